"""Parse and validate one DICOM Part 10 file without reading its pixel data.

Responsible for every reason a file is refused before anything is stored: empty, not DICOM, unreadable,
truncated (Pixel Data shorter than its declared length, an element cut short, an image without
pixels), or one of the four identifying UIDs missing. Pure: bytes in, a ParsedInstance or a
Rejection out; it never raises on bad input and never touches the fabric.
"""

from __future__ import annotations

import io
import struct
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import blake3

from medfabric.imaging.ingest.attributes import dataset_json
from medfabric.imaging.ingest.header import IMPLICIT_LITTLE, Truncated, read_header
from medfabric.imaging.ingest.model import (
    DICOMDIR,
    EMPTY,
    MISSING_PREFIX,
    NOT_DICOM,
    TRUNCATED,
    UNREADABLE,
    ParsedInstance,
    Rejection,
)

if TYPE_CHECKING:  # pydicom is imported on the general path only (see medfabric.imaging.dictionary)
    from pydicom.dataset import Dataset

PREAMBLE = 128
MAGIC = b"DICM"
UNDEFINED_LENGTH = 0xFFFFFFFF
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})  # Pixel Data, Float / Double Float Pixel Data
ITEM_TAG = (0xFFFE, 0xE000)
SEQUENCE_DELIMITER = (0xFFFE, 0xE0DD)
DEFLATED = "1.2.840.10008.1.2.1.99"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
# Explicit VRs whose length field is 32 bits, after two reserved bytes (PS3.5 7.1.2).
LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
REQUIRED = (
    ("SOPInstanceUID", "sop_instance_uid"),
    ("SeriesInstanceUID", "series_instance_uid"),
    ("StudyInstanceUID", "study_instance_uid"),
    ("SOPClassUID", "sop_class_uid"),
)

# What reading malformed input raises (pydicom adds its InvalidDicomError): no single base class.
PARSE_ERRORS: tuple[type[Exception], ...] = (
    EOFError,
    ValueError,
    struct.error,
    KeyError,
    TypeError,
    AttributeError,
    NotImplementedError,
    IndexError,
    OverflowError,
    UnicodeDecodeError,
    LookupError,
)


def parse_instance(data: bytes, *, with_attributes: bool = True) -> ParsedInstance | Rejection:
    """Parse and validate ``data``; ``with_attributes`` keeps the whole data set as plain JSON."""
    if not data:
        return Rejection(EMPTY, "the file is empty")
    if len(data) < PREAMBLE + len(MAGIC) or data[PREAMBLE : PREAMBLE + len(MAGIC)] != MAGIC:
        return Rejection(NOT_DICOM, 'not a DICOM Part 10 file (no "DICM" after the 128-byte preamble)')
    try:
        header = read_header(data)
    except Truncated as error:
        return Rejection(TRUNCATED, str(error))
    except PARSE_ERRORS as error:
        return Rejection(UNREADABLE, f"the DICOM header cannot be read: {_first_line(error)}")
    if header is None:
        return _parse_with_pydicom(data, with_attributes)
    if header.media_storage_sop_class == MEDIA_STORAGE_DIRECTORY:
        return Rejection(DICOMDIR, "a DICOMDIR (media storage directory), not an instance to store")
    attributes = header.attributes
    implicit = header.transfer_syntax == IMPLICIT_LITTLE
    if header.has_pixels:
        problem = _pixel_data_truncation(data, header.header_length, implicit, True)
    else:
        problem = _pixels_missing(attributes)
    return _finish(data, problem, attributes, header.transfer_syntax, header.header_length, with_attributes)


def parse_prefix(
    prefix: bytes, size: int, *, with_attributes: bool = True
) -> ParsedInstance | Rejection | None:
    """Parse a file from its first bytes (``size`` is the whole file's); None when it takes the whole
    file (a long header, encapsulated Pixel Data, a file pydicom must read). The digest is left
    empty: whoever holds the whole file computes it (``with_digest``)."""
    if len(prefix) >= size:
        return parse_instance(prefix, with_attributes=with_attributes)
    if len(prefix) < PREAMBLE + len(MAGIC) or prefix[PREAMBLE : PREAMBLE + len(MAGIC)] != MAGIC:
        return Rejection(NOT_DICOM, 'not a DICOM Part 10 file (no "DICM" after the 128-byte preamble)')
    try:
        header = read_header(prefix)
    except Truncated:
        return None
    except PARSE_ERRORS:
        return None
    if header is None or not header.has_pixels or header.media_storage_sop_class == MEDIA_STORAGE_DIRECTORY:
        return None
    offset = header.header_length
    implicit = header.transfer_syntax == IMPLICIT_LITTLE
    if offset + 12 > len(prefix):
        return None
    if implicit:
        (length,) = struct.unpack_from("<I", prefix, offset + 4)
        position = offset + 8
    elif prefix[offset + 4 : offset + 6] in LONG_VRS:
        (length,) = struct.unpack_from("<I", prefix, offset + 8)
        position = offset + 12
    else:
        (length,) = struct.unpack_from("<H", prefix, offset + 6)
        position = offset + 8
    if length == UNDEFINED_LENGTH:
        return None  # encapsulated: its fragments are checked on the whole file
    problem = None
    if position + length > size:
        problem = f"Pixel Data declares {length} bytes but {position + length - size} of them are missing"
    return _finish(
        prefix, problem, header.attributes, header.transfer_syntax, offset, with_attributes, size=size
    )


def with_digest(parsed: ParsedInstance, data: bytes, *, always: bool = False) -> ParsedInstance:
    """``parsed`` with the digest of the whole file filled in (when a prefix was parsed; ``always``:
    computed again whatever ``parsed`` says, as ingest does for the bytes it stores)."""
    if parsed.digest and not always:
        return parsed
    return replace(parsed, digest=blake3.blake3(data).digest())


def _parse_with_pydicom(data: bytes, with_attributes: bool) -> ParsedInstance | Rejection:
    """The general path (big endian, deflate, ISO 2022 character sets, unusual structures)."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    errors: tuple[type[Exception], ...] = (InvalidDicomError, *PARSE_ERRORS)
    stream = io.BytesIO(data)
    try:
        ds = dcmread(stream, stop_before_pixels=True)
    except errors as error:
        return Rejection(UNREADABLE, f"the DICOM header cannot be read: {_first_line(error)}")
    header_length = stream.tell()
    try:
        if _text(ds.file_meta.get("MediaStorageSOPClassUID")) == MEDIA_STORAGE_DIRECTORY:
            return Rejection(DICOMDIR, "a DICOMDIR (media storage directory), not an instance to store")
        transfer_syntax = _text(ds.file_meta.get("TransferSyntaxUID")) or ""
        attributes = dataset_json(ds)
        problem = _truncation(ds, data, header_length, transfer_syntax, attributes)
        return _finish(data, problem, attributes, transfer_syntax, header_length, with_attributes)
    except errors as error:
        return Rejection(UNREADABLE, f"the DICOM header cannot be decoded: {_first_line(error)}")


def _finish(
    data: bytes,
    problem: str | None,
    attributes: dict[str, Any],
    transfer_syntax: str,
    header_length: int,
    with_attributes: bool,
    *,
    size: int | None = None,
) -> ParsedInstance | Rejection:
    if problem:
        return Rejection(TRUNCATED, problem)
    for keyword, snake in REQUIRED:
        if not _text(attributes.get(keyword)):
            return Rejection(MISSING_PREFIX + snake, f"the required attribute {keyword} is missing or empty")
    return parsed_from_attributes(
        attributes,
        transfer_syntax_uid=transfer_syntax,
        size=len(data) if size is None else size,
        digest=blake3.blake3(data).digest() if size is None else b"",
        header_length=header_length,
        keep=with_attributes,
    )


def parsed_from_attributes(
    attributes: dict[str, Any],
    *,
    transfer_syntax_uid: str,
    size: int = 0,
    digest: bytes = b"",
    header_length: int = 0,
    keep: bool = True,
) -> ParsedInstance:
    """The hot attributes of a data set rendered by ``dataset_json``."""
    get = attributes.get
    return ParsedInstance(
        sop_instance_uid=_text(get("SOPInstanceUID")) or "",
        sop_class_uid=_text(get("SOPClassUID")) or "",
        series_instance_uid=_text(get("SeriesInstanceUID")) or "",
        study_instance_uid=_text(get("StudyInstanceUID")) or "",
        transfer_syntax_uid=transfer_syntax_uid,
        size=size,
        digest=digest,
        header_length=header_length,
        patient_id=_text(get("PatientID")),
        issuer_of_patient_id=_text(get("IssuerOfPatientID")),
        patient_name=_text(get("PatientName")),
        patient_birth_date=_text(get("PatientBirthDate")),
        patient_sex=_text(get("PatientSex")),
        study_date=_text(get("StudyDate")),
        study_time=_text(get("StudyTime")),
        accession_number=_text(get("AccessionNumber")),
        study_description=_text(get("StudyDescription")),
        referring_physician_name=_text(get("ReferringPhysicianName")),
        modality=_text(get("Modality")),
        series_number=_integer(get("SeriesNumber")),
        series_description=_text(get("SeriesDescription")),
        body_part_examined=_text(get("BodyPartExamined")),
        instance_number=_integer(get("InstanceNumber")),
        attributes=attributes if keep else {},
    )


def _truncation(
    ds: Dataset, data: bytes, offset: int, transfer_syntax: str, attributes: dict[str, Any]
) -> str | None:
    """Why the file looks cut short, or None: the checks an interrupted transfer fails."""
    for element in ds._dict.values():  # raw elements, not yet decoded: their declared length is kept
        length = getattr(element, "length", None)
        value = getattr(element, "value", None)
        if (
            isinstance(value, bytes)
            and length is not None
            and length != UNDEFINED_LENGTH
            and len(value) < length
        ):
            return f"attribute ({element.tag.group:04X},{element.tag.elem:04X}) is cut short"
    if transfer_syntax == DEFLATED:
        return None  # the parsed bytes were inflated: offsets into `data` mean nothing
    implicit, little = ds.original_encoding
    if offset < len(data):
        return _pixel_data_truncation(data, offset, bool(implicit), little is not False)
    return _pixels_missing(attributes)


def _pixels_missing(attributes: dict[str, Any]) -> str | None:
    """An image without Pixel Data was cut short (at an element boundary, where nothing else shows)."""
    if "Rows" in attributes or _is_image_storage(_text(attributes.get("SOPClassUID"))):
        return "an image whose file ends before its Pixel Data"
    return None


def _is_image_storage(sop_class_uid: str | None) -> bool:
    """Image Storage SOP Classes (PS3.4 B.5) carry Pixel Data: one without it was cut short."""
    if not sop_class_uid:
        return False
    from pydicom.uid import UID

    name = UID(sop_class_uid).name
    return "Image Storage" in name and "Raw" not in name


def _pixel_data_truncation(data: bytes, offset: int, implicit: bool, little: bool) -> str | None:
    """Check that the element at ``offset`` (where parsing stopped) has all its bytes."""
    end = "<" if little else ">"
    if offset + 8 > len(data):
        return "the file ends inside an element header"
    group, element = struct.unpack_from(end + "HH", data, offset)
    if (group << 16 | element) not in PIXEL_TAGS:
        return None
    if implicit:
        (length,) = struct.unpack_from(end + "I", data, offset + 4)
        position = offset + 8
    elif data[offset + 4 : offset + 6] in LONG_VRS:
        if offset + 12 > len(data):
            return "the file ends inside the Pixel Data header"
        (length,) = struct.unpack_from(end + "I", data, offset + 8)
        position = offset + 12
    else:
        (length,) = struct.unpack_from(end + "H", data, offset + 6)
        position = offset + 8
    if length != UNDEFINED_LENGTH:
        if position + length > len(data):
            missing = position + length - len(data)
            return f"Pixel Data declares {length} bytes but {missing} of them are missing"
        return None
    # Encapsulated: items, then a sequence delimiter, all within the file.
    while True:
        if position + 8 > len(data):
            return "the encapsulated Pixel Data ends before its sequence delimiter"
        group, element, item_length = struct.unpack_from(end + "HHI", data, position)
        position += 8
        if (group, element) == SEQUENCE_DELIMITER:
            return None
        if (group, element) != ITEM_TAG or item_length == UNDEFINED_LENGTH:
            return f"the encapsulated Pixel Data holds an unexpected element ({group:04X},{element:04X})"
        if position + item_length > len(data):
            return "a fragment of the encapsulated Pixel Data is cut short"
        position += item_length


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        value = "\\".join("" if v is None else str(v) for v in value)
    text = str(value).strip(" \x00")
    return text or None


def _integer(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
