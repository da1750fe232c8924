"""A DICOM data set as plain JSON (PS3.18 F.2 simplified): what the metadata table stores per instance.

Keys are DICOM keywords (private and unknown attributes: the tag as 8 upper-case hex digits, as in
DICOM JSON); values are plain JSON: PN as its string form, multi-valued attributes as lists,
sequences as lists of objects, IS/DS and binary numbers as numbers, empty values as null. Bulk data
(OB, OD, OF, OL, OV, OW, UN) is left out. Values still raw from the parser are decoded here directly
(pydicom's per-element conversion costs more than the rest of ingest's parsing); anything unusual
(ISO 2022 code extensions, ambiguous VRs) goes through pydicom. Pure: never touches files.
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING, Any

from medfabric.imaging import dictionary

if TYPE_CHECKING:  # pydicom is imported where a data set from it is converted, not on the hot path
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset
    from pydicom.tag import BaseTag

BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW", "US or SS or OW"})
CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})
SINGLE_VALUED = frozenset({"LT", "ST", "UT", "UR"})
TRAILING_ONLY = frozenset({"LT", "ST", "UT", "UC"})
BINARY = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "UV": "Q", "SV": "q"}
SPECIFIC_CHARACTER_SET = 0x00080005
_SKIP = object()


def dataset_json(ds: Dataset, codec: str | None = None) -> dict[str, Any]:
    """Every attribute of ``ds`` (file meta excluded) as plain JSON, bulk data left out.

    ``codec`` is the Python codec of the enclosing data set's Specific Character Set (for items).
    """
    codec = _codec_of(ds, codec)
    result: dict[str, Any] = {}
    for tag, element in sorted(ds._dict.items()):
        if tag.element == 0 or tag.group in (0x0002, 0xFFFC):  # group lengths, file meta, padding
            continue
        try:
            value = _element_value(ds, tag, element, codec)
        except Exception:  # noqa: BLE001 - one malformed value must not lose the rest of the document
            continue
        if value is not _SKIP:
            result[_keyword(int(tag))] = value
    return result


_keyword = dictionary.keyword  # tag -> keyword, or its 8 hex digits
_dictionary_vr = dictionary.dictionary_vr  # tag -> VR in the dictionary, "UN" when unknown


def _codec_of(ds: Dataset, inherited: str | None) -> str | None:
    """The one Python codec for text in ``ds``, or None where pydicom must decode (code extensions)."""
    from pydicom.charset import python_encoding
    from pydicom.multival import MultiValue
    from pydicom.tag import BaseTag

    if SPECIFIC_CHARACTER_SET not in ds._dict:
        return inherited if inherited is not None else "latin_1"
    element = ds._dict[BaseTag(SPECIFIC_CHARACTER_SET)]
    raw = element.value
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw or "")
    if isinstance(raw, (list, MultiValue)):
        return None
    names = [name.strip() for name in text.split("\\")]
    if len(names) != 1 or names[0].startswith("ISO 2022"):
        return None
    found = python_encoding.get(names[0])
    if found is None:
        return None
    return "latin_1" if found == "iso8859" else found


def _element_value(ds: Dataset, tag: BaseTag, element: Any, codec: str | None) -> Any:
    from pydicom.dataelem import RawDataElement

    if isinstance(element, RawDataElement) and element.value is not None:
        vr = str(element.VR) if element.VR else _dictionary_vr(int(tag))
        if vr == "UN" and not tag.is_private and _dictionary_vr(int(tag)) != "UN":
            return element_json(ds[tag], codec)  # a known attribute written as UN: pydicom reads it as known
        if vr in BULK_VRS:
            return _SKIP
        if vr == "SQ" or " or " in vr or (codec is None and vr in CHARSET_VRS):
            return element_json(ds[tag], codec)
        return _decode_raw(vr, element.value, element.is_little_endian, codec or "latin_1")
    return element_json(ds[tag], codec)


def _decode_raw(vr: str, raw: bytes, little: bool, codec: str) -> Any:
    if vr in BINARY:
        code = BINARY[vr]
        count = len(raw) // struct.calcsize(code)
        if count == 0:
            return None
        numbers = struct.unpack(("<" if little else ">") + code * count, raw[: count * struct.calcsize(code)])
        found = [_finite(n) if vr in ("FL", "FD") else n for n in numbers]
        return found[0] if count == 1 else found
    if vr == "AT":
        count = len(raw) // 4
        pairs = struct.unpack(("<" if little else ">") + "HH" * count, raw[: count * 4])
        tags = [f"{pairs[i]:04X}{pairs[i + 1]:04X}" for i in range(0, len(pairs), 2)]
        return None if not tags else tags[0] if count == 1 else tags
    text = raw.decode(codec if vr in CHARSET_VRS else "latin_1", "replace")
    parts = [text] if vr in SINGLE_VALUED else text.split("\\")
    if vr in TRAILING_ONLY:
        cleaned = [part.rstrip(" \x00") for part in parts]
    else:
        cleaned = [part.strip(" \x00") for part in parts]
    if vr == "IS":
        values: list[Any] = [_number(part, int) for part in cleaned]
    elif vr == "DS":
        values = [_number(part, float) for part in cleaned]
    else:
        values = [part if part != "" else None for part in cleaned]
    if len(values) == 1:
        return values[0]
    return values if any(v is not None for v in values) else None


def _number(text: str, kind: type[int] | type[float]) -> Any:
    """IS and DS as numbers; a value that is not one is kept as the file has it."""
    if text == "":
        return None
    try:
        return kind(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    if kind is int and number.is_integer():
        return int(number)
    return text


def _finite(number: float) -> float | None:
    return number if math.isfinite(number) else None


def element_json(element: DataElement, codec: str | None = None) -> Any:
    """A decoded element's value as plain JSON, or ``_SKIP`` for bulk data."""
    from pydicom.multival import MultiValue

    vr = element.VR
    if vr in BULK_VRS:
        return _SKIP
    value = element.value
    if vr == "SQ":
        return [dataset_json(item, codec) for item in value or ()]
    if value is None or value == "" or (isinstance(value, (list, MultiValue)) and len(value) == 0):
        return None
    if isinstance(value, (list, MultiValue)):
        return [_scalar(item) for item in value]
    return _scalar(value)


def _scalar(value: Any) -> Any:
    from pydicom.tag import BaseTag
    from pydicom.valuerep import PersonName

    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, BaseTag):  # AT: before int, which it subclasses
        return f"{int(value):08X}"
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _finite(float(value))
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, str):
        return str(value)
    try:  # DSdecimal and other numeric types
        return _finite(float(value))
    except (TypeError, ValueError):
        return str(value)
