"""Reads DICOM files for the engine and writes its outputs, copying untouched elements as raw bytes.

pydicom spends most of a small instance's write time re-framing elements one buffer at a time; elements
the engine did not change are still raw, so their bytes are framed here directly (pixel data is never
decoded). Anything unusual (big endian, deflate, a changed character set) goes to pydicom unchanged.
"""

from __future__ import annotations

import io
import os
import struct
from functools import lru_cache
from pathlib import Path

from pydicom import dcmread, dcmwrite
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from medfabric.errors import InvalidInput, NotFound

_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
_UNDEFINED = 0xFFFFFFFF
_SEQUENCE_DELIMITER = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
_ITEM_DELIMITER = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)


#: What pydicom raises on a malformed file (it has no single base class for these).
PARSE_ERRORS: tuple[type[Exception], ...] = (
    InvalidDicomError,
    EOFError,
    ValueError,
    struct.error,
    KeyError,
    TypeError,
    AttributeError,
    NotImplementedError,
    IndexError,
    OverflowError,
)


def read_dataset(path: Path) -> Dataset:
    """The dataset in `path`; NotFound if there is no such file, InvalidInput if it is not DICOM."""
    try:
        data = path.read_bytes()  # one read: pydicom parses a memory buffer faster than a file
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except OSError as error:
        raise InvalidInput(f"{path}: cannot be read: {error}") from error
    ds = parse_dataset(data, str(path))
    ds.filename = str(path)
    return ds


def parse_dataset(data: bytes, name: str) -> Dataset:
    """The dataset in the bytes of a file called ``name`` (for messages); InvalidInput if not DICOM."""
    # a dataset without the Part 10 header is accepted when it starts like one (group 0002 or 0008)
    headerless = data[128:132] != b"DICM" and data[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")
    try:
        ds = dcmread(io.BytesIO(data), force=headerless)
    except PARSE_ERRORS as error:
        raise InvalidInput(f"{name}: not a readable DICOM file: {error}") from error
    if headerless:
        _add_file_meta(ds)
    return ds


def _add_file_meta(ds: Dataset) -> None:
    """File meta information for a dataset read without it, so that its copy is a Part 10 file."""
    implicit, little = ds.original_encoding
    meta = ds.file_meta
    meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    )
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


_IMPLICIT_HEADER = struct.Struct("<HHI")
_EXPLICIT_SHORT_HEADER = struct.Struct("<HH2sH")
_EXPLICIT_LONG_HEADER = struct.Struct("<HH2sHI")


def _header(tag: int, vr: str | None, length: int, implicit: bool) -> bytes:
    if implicit:
        return _IMPLICIT_HEADER.pack(tag >> 16, tag & 0xFFFF, length)
    assert vr is not None
    if vr in _LONG_VRS:
        return _EXPLICIT_LONG_HEADER.pack(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), 0, length)
    return _EXPLICIT_SHORT_HEADER.pack(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), length)


def _encode_dataset(ds: Dataset, implicit: bool, encodings: str | list[str], out: list[bytes]) -> None:
    if 0x00080005 in ds:
        encodings = ds.SpecificCharacterSet
    codec = single_codec(encodings if isinstance(encodings, str) else tuple(encodings))
    elements = ds._dict
    append = out.append
    # int keys sort in C; pydicom's BaseTag compares in Python
    for tag, elem in sorted(zip(map(int, elements), elements.values(), strict=True)):
        group = tag >> 16
        if tag & 0xFFFF == 0 and group > 6:
            continue  # retired group lengths are not written (PS3.5 7.2), as pydicom does
        if type(elem) is RawDataElement and type(elem.value) is bytes:
            value: bytes = elem.value
            vr = elem.VR
            length = elem.length
            if implicit:
                append(
                    _IMPLICIT_HEADER.pack(group, tag & 0xFFFF, length if length == _UNDEFINED else len(value))
                )
            elif vr is None or len(vr) != 2:
                _encode_with_pydicom(ds[tag], implicit, encodings, out)
                continue
            elif vr in _LONG_VRS:
                append(
                    _EXPLICIT_LONG_HEADER.pack(
                        group, tag & 0xFFFF, vr.encode(), 0, length if length == _UNDEFINED else len(value)
                    )
                )
            elif len(value) <= 0xFFFF:
                append(_EXPLICIT_SHORT_HEADER.pack(group, tag & 0xFFFF, vr.encode(), len(value)))
            else:
                _encode_with_pydicom(ds[tag], implicit, encodings, out)
                continue
            append(value)
            if length == _UNDEFINED:
                append(_SEQUENCE_DELIMITER)
            continue
        converted = ds[tag]
        if converted.VR == "SQ":
            _encode_sequence(converted, implicit, encodings, out)
        else:
            encoded = _encode_simple(converted, implicit, codec)
            if encoded is None:
                _encode_with_pydicom(converted, implicit, encodings, out)
            else:
                out.append(encoded)


def _encode_sequence(elem: DataElement, implicit: bool, encodings: str | list[str], out: list[bytes]) -> None:
    items: list[bytes] = []
    for item in elem.value:
        inner: list[bytes] = []
        _encode_dataset(item, implicit, encodings, inner)
        body = b"".join(inner)
        if item.is_undefined_length_sequence_item:
            items += [struct.pack("<HHI", 0xFFFE, 0xE000, _UNDEFINED), body, _ITEM_DELIMITER]
        else:
            items += [struct.pack("<HHI", 0xFFFE, 0xE000, len(body)), body]
    value = b"".join(items)
    if elem.is_undefined_length:
        out += [_header(elem.tag, "SQ", _UNDEFINED, implicit), value, _SEQUENCE_DELIMITER]
    else:
        out += [_header(elem.tag, "SQ", len(value), implicit), value]


#: VRs whose text follows the Specific Character Set, and VRs that are ASCII whatever it says.
_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "PN"})
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"})
_BINARY_VRS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}


@lru_cache(maxsize=64)
def single_codec(encodings: str | tuple[str, ...] | None) -> str | None:
    """The one Python codec for text in this character set, or None when pydicom must encode it."""
    try:
        codecs = convert_encodings(list(encodings) if isinstance(encodings, tuple) else encodings)
    except LookupError:
        return None
    return codecs[0] if len(codecs) == 1 and "2022" not in codecs[0] else None


def encode_value(vr: str, value: object, codec: str | None) -> bytes | None:
    """The padded value bytes of plain text (or text list), bytes or one number; None if not that simple."""
    payload: bytes
    if vr in _TEXT_VRS or vr in _ASCII_VRS:
        if value is None or value == "":
            return b""
        if isinstance(value, MultiValue | list | tuple):
            value = "\\".join("" if v is None else str(v) for v in value)
        elif not isinstance(value, str):
            value = str(value)
        if vr in _TEXT_VRS:
            if codec is None:
                return None
            try:
                payload = value.encode(codec)
            except UnicodeError:
                return None
        elif value.isascii():
            payload = value.encode("ascii")
        else:
            return None
        if len(payload) % 2:
            payload += b"\0" if vr == "UI" else b" "
        return payload
    if vr in _BINARY_VRS:
        if value is None:
            return b""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return struct.pack("<" + _BINARY_VRS[vr], value)
        return None
    if vr in ("OB", "UN") and isinstance(value, bytes):
        return value + b"\0" if len(value) % 2 else value
    return None


def _encode_simple(elem: DataElement, implicit: bool, codec: str | None) -> bytes | None:
    """`elem` framed directly when `encode_value` can encode its value; None otherwise."""
    vr = str(elem.VR)
    if elem.is_undefined_length:
        return None
    payload = encode_value(vr, elem.value, codec)
    if payload is None or (not implicit and vr not in _LONG_VRS and len(payload) > 0xFFFF):
        return None
    return _header(int(elem.tag), vr, len(payload), implicit) + payload


_SIMPLE_META_VRS = frozenset({"UI", "OB", "SH", "AE", "UL", "UR"})


def _encode_meta(meta: Dataset) -> bytes | None:
    """The file meta group (explicit VR little endian, with its group length), or None for pydicom."""
    required = (0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012)
    if any(tag not in meta for tag in required):
        return None
    parts = []
    for tag, elem in sorted(zip(map(int, meta._dict), meta._dict.values(), strict=True)):
        if tag == 0x00020000:
            continue
        if type(elem) is RawDataElement and isinstance(elem.value, bytes) and elem.VR in _SIMPLE_META_VRS:
            parts.append(_header(tag, elem.VR, len(elem.value), False) + elem.value)
            continue
        encoded = _encode_simple(meta[tag], False, "ascii")
        if encoded is None:
            return None
        parts.append(encoded)
    body = b"".join(parts)
    return _EXPLICIT_SHORT_HEADER.pack(0x0002, 0x0000, b"UL", 4) + struct.pack("<I", len(body)) + body


def _encode_with_pydicom(
    elem: DataElement, implicit: bool, encodings: str | list[str], out: list[bytes]
) -> None:
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = implicit
    write_data_element(buffer, elem, encodings)
    out.append(buffer.getvalue())


def encode_file(ds: Dataset) -> bytes:
    """`ds` as a DICOM Part 10 file: preamble, file meta information, then the dataset."""
    meta = getattr(ds, "file_meta", None)
    syntax = UID(str(meta.get("TransferSyntaxUID", ""))) if meta is not None else UID("")
    implicit = syntax.is_transfer_syntax and syntax.is_implicit_VR
    fast = (
        meta is not None
        and syntax.is_transfer_syntax
        and syntax.is_little_endian
        and not syntax.is_deflated
        and ds.original_encoding == (implicit, True)
        and ds.original_character_set == ds._character_set
    )
    if not fast or meta is None:
        buffer = io.BytesIO()
        try:
            dcmwrite(buffer, ds, enforce_file_format=meta is not None)
        except (AttributeError, ValueError, TypeError) as error:  # pydicom's refusals of an incomplete set
            raise InvalidInput(f"cannot encode the dataset: {error}") from error
        return buffer.getvalue()
    meta_bytes = _encode_meta(meta)
    if meta_bytes is None:
        meta_buffer = DicomBytesIO()
        meta_buffer.is_little_endian, meta_buffer.is_implicit_VR = True, False
        write_file_meta_info(meta_buffer, meta, enforce_standard=True)
        meta_bytes = meta_buffer.getvalue()
    preamble = ds.preamble if ds.preamble is not None and len(ds.preamble) == 128 else b"\x00" * 128
    out: list[bytes] = [preamble, b"DICM", meta_bytes]
    _encode_dataset(ds, implicit, default_encoding, out)
    return b"".join(out)


def write_file(path: Path, ds: Dataset) -> None:
    """Write `ds` to `path` atomically: to a temporary name beside it, then renamed over it."""
    data = encode_file(ds)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        stream = open(temporary, "wb")  # noqa: SIM115 - closed below, before the rename
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = open(temporary, "wb")  # noqa: SIM115
    try:
        with stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
