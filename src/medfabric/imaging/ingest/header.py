"""A direct reader for the common case: a Part 10 header in little endian (explicit or implicit VR),
read element by element from the bytes into plain JSON, stopping at Pixel Data.

Ingest parses every instance; pydicom builds an object per element and costs several times what
ingest's budget allows. This reader handles what scanners send (the file meta group, explicit and
implicit VR little endian data sets with every encapsulated syntax, nested sequences, one character
set) and says ``None`` for anything else (big endian, deflate, ISO 2022 code extensions, odd
structures), so the caller falls back to pydicom. It never guesses: a value that runs past the end
of the file raises ``Truncated``. Pure: bytes in, values out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from medfabric.imaging.ingest.attributes import (
    BULK_VRS,
    CHARSET_VRS,
    _decode_raw,
    _dictionary_vr,
    _keyword,
    _number,
)

UNDEFINED = 0xFFFFFFFF
ITEM = 0xFFFEE000
ITEM_END = 0xFFFEE00D
SEQUENCE_END = 0xFFFEE0DD
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
SPECIFIC_CHARACTER_SET = 0x00080005
PIXEL_REPRESENTATION = 0x00280103
IMPLICIT_LITTLE = "1.2.840.10008.1.2"
UNSUPPORTED_SYNTAXES = frozenset({"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"})  # big endian, deflate
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
SIMPLE_CHARSETS = {
    "": "latin_1",
    "ISO_IR 6": "latin_1",
    "ISO_IR 100": "latin_1",
    "ISO_IR 101": "iso8859_2",
    "ISO_IR 109": "iso8859_3",
    "ISO_IR 110": "iso8859_4",
    "ISO_IR 144": "iso8859_5",
    "ISO_IR 127": "iso8859_6",
    "ISO_IR 126": "iso8859_7",
    "ISO_IR 138": "iso8859_8",
    "ISO_IR 148": "iso8859_9",
    "ISO_IR 203": "iso8859_15",
    "ISO_IR 166": "tis_620",
    "ISO_IR 192": "utf_8",
    "GB18030": "gb18030",
    "GBK": "gbk",
}
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_TAG = struct.Struct("<HH")
_ELEMENT = struct.Struct("<HH2sH")  # an explicit VR element header: group, element, VR, short length
_MAX_DEPTH = 16
_VR_NAMES = (
    "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV"
)
# every VR of PS3.5 6.2 as its bytes -> (its name, whether it has the 4-byte length of Table 7.1-1)
_VR_TABLE: dict[bytes, tuple[str, bool]] = {
    name.encode("ascii"): (name, name in LONG_VRS) for name in _VR_NAMES.split()
}
# text VRs whose values are never affected by the character set and are trimmed on both sides
_PLAIN_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI"})
# text VRs of one value that keep leading spaces (PS3.5 6.2): left to the general decoder
_CHARSET_LONG_TEXT = frozenset({"LT", "ST", "UT"})


class Truncated(Exception):
    """The bytes end before an element does: an interrupted transfer."""


class Unsupported(Exception):
    """Something this reader leaves to pydicom."""


@dataclass(frozen=True)
class Header:
    attributes: dict[str, Any]
    transfer_syntax: str
    media_storage_sop_class: str
    header_length: int  # offset of Pixel Data (or the end of the file)
    has_pixels: bool


def read_header(data: bytes) -> Header | None:
    """The header of a Part 10 file (``data`` starts with the preamble and "DICM"); None: use pydicom."""
    try:
        return _Reader(data).read()
    except Unsupported:
        return None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.implicit = False
        self.pixel_representation = 0

    def read(self) -> Header:
        meta, position = self._file_meta(132)
        syntax = str(meta.get(0x00020010, "")).strip("\x00 ")
        if not syntax or syntax in UNSUPPORTED_SYNTAXES:
            raise Unsupported(syntax)
        self.implicit = syntax == IMPLICIT_LITTLE
        attributes: dict[str, Any] = {}
        end, pixels = self._dataset(position, self.size, attributes, "latin_1", 0, top=True)
        return Header(attributes, syntax, str(meta.get(0x00020002, "")).strip("\x00 "), end, pixels)

    def _file_meta(self, position: int) -> tuple[dict[int, str], int]:
        """Group 0002, always explicit VR little endian: the values we need, and where it ends."""
        values: dict[int, str] = {}
        while position + 8 <= self.size:
            group, element = _TAG.unpack_from(self.data, position)
            if group != 0x0002:
                break
            _vr, length, start = self._explicit_header(position)
            if length == UNDEFINED or start + length > self.size:
                raise Truncated("the file meta information is cut short")
            values[group << 16 | element] = self.data[start : start + length].decode("latin_1")
            position = start + length
        return values, position

    def _explicit_header(self, position: int) -> tuple[str, int, int]:
        if position + 8 > self.size:
            raise Truncated("the file ends inside an element header")
        vr_bytes = self.data[position + 4 : position + 6]
        if not vr_bytes.isalpha() or not vr_bytes.isupper():
            raise Unsupported(f"VR {vr_bytes!r}")
        vr = vr_bytes.decode("ascii")
        if vr in LONG_VRS:
            if position + 12 > self.size:
                raise Truncated("the file ends inside an element header")
            return vr, _U32.unpack_from(self.data, position + 8)[0], position + 12
        return vr, _U16.unpack_from(self.data, position + 6)[0], position + 8

    def _dataset(
        self, position: int, end: int, out: dict[str, Any], codec: str, depth: int, *, top: bool = False
    ) -> tuple[int, bool]:
        """Read elements from ``position`` to ``end`` (or an item delimiter); returns (where it stopped,
        whether it stopped at Pixel Data).

        The hot loop of ingest (every element of every instance passes here once), written for speed:
        one struct unpack per element header, the VR looked up in a table, keywords and dictionary VRs
        from the dictionary's caches, text values of one part decoded without building lists."""
        if depth > _MAX_DEPTH:
            raise Unsupported("sequences nested too deep")
        data = self.data
        size = self.size
        implicit = self.implicit
        unpack_element = _ELEMENT.unpack_from
        unpack_u32 = _U32.unpack_from
        vr_table = _VR_TABLE
        text_codec = codec or "latin_1"
        while position < end:
            if position + 8 > size:
                raise Truncated("the file ends inside an element header")
            group, element, vr_bytes, length = unpack_element(data, position)
            tag = group << 16 | element
            if tag == ITEM_END:
                return position + 8, False
            if top and tag in PIXEL_TAGS:
                return position, True
            if implicit:
                length = unpack_u32(data, position + 4)[0]
                start = position + 8
                vr = self._implicit_vr(tag)
            else:
                known_vr = vr_table.get(vr_bytes)
                if known_vr is None:
                    vr, length, start = self._explicit_header(position)
                elif known_vr[1]:
                    if position + 12 > size:
                        raise Truncated("the file ends inside an element header")
                    vr = known_vr[0]
                    length = unpack_u32(data, position + 8)[0]
                    start = position + 12
                else:
                    vr = known_vr[0]
                    start = position + 8
                if vr == "UN" and not group & 1 and length != UNDEFINED:
                    # a known attribute written as UN (some converters do): read it as its dictionary
                    # VR, as pydicom does; a sequence so written is pydicom's to read
                    known = self._implicit_vr(tag)
                    if known == "SQ":
                        raise Unsupported(f"({group:04X},{element:04X}) is a sequence written as UN")
                    if known not in ("UN", "NONE"):
                        vr = known
            if vr == "NONE" or (length == UNDEFINED and vr == "UN"):
                raise Unsupported(f"({group:04X},{element:04X}) where a data element was expected")
            if vr == "SQ":
                items: list[dict[str, Any]] = []
                position = self._sequence(start, length, items, codec, depth)
                if element != 0 and group not in (0x0002, 0xFFFC):
                    out[_keyword(tag)] = items
                continue
            if length == UNDEFINED:
                raise Unsupported(f"undefined length for ({group:04X},{element:04X})")
            position = start + length
            if position > size:
                raise Truncated(f"attribute ({group:04X},{element:04X}) is cut short")
            if element == 0 or group == 0x0002 or group == 0xFFFC or vr in BULK_VRS:
                continue
            raw = data[start:position]
            if tag == SPECIFIC_CHARACTER_SET:
                codec = _codec(raw)
                text_codec = codec or "latin_1"
            elif tag == PIXEL_REPRESENTATION and length >= 2:
                self.pixel_representation = _U16.unpack_from(raw)[0]
            keyword = _keyword(tag)
            if vr in _PLAIN_TEXT_VRS:
                text = raw.decode("latin_1")
                if "\\" not in text:
                    out[keyword] = text.strip(" \x00") or None
                    continue
            elif vr in CHARSET_VRS:
                if codec == "":
                    raise Unsupported("a character set this reader does not decode")
                if vr not in _CHARSET_LONG_TEXT:
                    text = raw.decode(text_codec, "replace")
                    if "\\" not in text:
                        out[keyword] = (text.rstrip(" \x00") if vr == "UC" else text.strip(" \x00")) or None
                        continue
            elif vr == "DS" or vr == "IS":
                text = raw.decode("latin_1")
                if "\\" not in text:
                    out[keyword] = _number(text.strip(" \x00"), float if vr == "DS" else int)
                    continue
            elif vr == "US" and length == 2:
                out[keyword] = _U16.unpack_from(raw)[0]
                continue
            out[keyword] = _decode_raw(vr, raw, True, text_codec)
        return position, False

    def _sequence(
        self, position: int, length: int, items: list[dict[str, Any]], codec: str, depth: int
    ) -> int:
        end = self.size if length == UNDEFINED else position + length
        if end > self.size:
            raise Truncated("a sequence is cut short")
        data = self.data
        while position < end:
            if position + 8 > self.size:
                raise Truncated("the file ends inside a sequence")
            group, element = _TAG.unpack_from(data, position)
            tag = group << 16 | element
            item_length = _U32.unpack_from(data, position + 4)[0]
            position += 8
            if tag == SEQUENCE_END:
                return position
            if tag != ITEM:
                raise Unsupported(f"({group:04X},{element:04X}) inside a sequence")
            item: dict[str, Any] = {}
            if item_length == UNDEFINED:
                position, _ = self._dataset(position, self.size, item, codec, depth + 1)
            else:
                if position + item_length > self.size:
                    raise Truncated("a sequence item is cut short")
                self._dataset(position, position + item_length, item, codec, depth + 1)
                position += item_length
            items.append(item)
        if length == UNDEFINED:
            raise Truncated("a sequence ends without its delimiter")
        return position

    def _implicit_vr(self, tag: int) -> str:
        if tag >> 16 == 0xFFFE:
            return "NONE"
        if tag & 0x00010000:  # private (odd group): not in the dictionary, treated as bulk
            return "UN"
        vr = _dictionary_vr(tag)
        if vr == "US or SS":
            return "SS" if self.pixel_representation == 1 else "US"
        if " or " in vr:
            return "OB"  # OB or OW and similar: bulk data either way
        return vr


def _codec(raw: bytes) -> str:
    """The Python codec for a Specific Character Set value; '' for code extensions (pydicom's job)."""
    names = [name.strip(" \x00") for name in raw.decode("ascii", "replace").split("\\")]
    if len(names) != 1:
        return ""
    return SIMPLE_CHARSETS.get(names[0], "")
