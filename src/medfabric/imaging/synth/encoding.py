"""Transfer syntaxes and Part 10 files: puts an instance's pixels into Pixel Data (native or
encapsulated, via pydicom's encoders) and writes the file with our File Meta Information.

Deterministic by construction: no clock, no random UIDs (pydicom's compress() would otherwise
replace the SOPInstanceUID), and a fixed Implementation Class UID.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom import Dataset
from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr_element, write_data_element, write_file_meta_info
from pydicom.tag import BaseTag
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from .uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

NATIVE_TRANSFER_SYNTAXES = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian})
SOURCE_AE_TITLE = "MF_SYNTH"
PREAMBLE = b"\0" * 128 + b"DICM"


def file_meta(ds: Dataset, transfer_syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    meta.SourceApplicationEntityTitle = SOURCE_AE_TITLE
    return meta


def set_pixel_data(ds: Dataset, pixels: np.ndarray, transfer_syntax: str) -> None:
    """Set Pixel Data in `transfer_syntax` and the file meta that declares it.

    `ds` may be reused from the previous instance of the series: everything this function
    changes (Pixel Data, Photometric Interpretation, Planar Configuration, file meta) is reset first.
    Colour pixels must be RGB.
    """
    colour = ds.SamplesPerPixel > 1
    if colour:
        ds.PlanarConfiguration = 0
        # JPEG 2000 lossless applies the reversible colour transform (PS3.5 8.2.4); the US Image
        # module then requires YBR_RCT (PS3.3 C.8.5.6.1.2). Uncompressed, RLE and JPEG-LS stay RGB.
        ds.PhotometricInterpretation = "YBR_RCT" if transfer_syntax == JPEG2000Lossless else "RGB"
    if transfer_syntax in NATIVE_TRANSFER_SYNTAXES:
        ds.file_meta = file_meta(ds, transfer_syntax)
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
        return
    ds.file_meta = file_meta(ds, ExplicitVRLittleEndian)
    ds.compress(UID(transfer_syntax), pixels, generate_instance_uid=False)
    if transfer_syntax == RLELossless and colour:
        # RLE codes each colour in its own segment: the decoded frame is colour-by-plane (PS3.5 G.2).
        ds.PlanarConfiguration = 1
    ds.file_meta = file_meta(ds, transfer_syntax)


def write_file(ds: Dataset, path: Path) -> int:
    """Write `ds` as a DICOM Part 10 file; return its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        ds.save_as(stream, enforce_file_format=True)
        return stream.tell()


class InstanceEncoder:
    """Encodes the successive instances of one series as Part 10 files, byte for byte what
    pydicom's ``save_as(enforce_file_format=True)`` writes, but re-encoding only the data elements
    replaced since the previous instance: the series header (about 120 elements) is encoded once.

    An element counts as unchanged while its value is the same object (``ds.X = v`` replaces the
    value object even when it keeps the DataElement), so callers must assign new values, never
    mutate a multi-value or a sequence item in place.
    """

    def __init__(self) -> None:
        self._cache: dict[BaseTag, tuple[object, str, bool, bytes]] = {}

    def encode(self, ds: Dataset) -> list[bytes]:
        transfer_syntax = UID(ds.file_meta.TransferSyntaxUID)
        implicit_vr = transfer_syntax == ImplicitVRLittleEndian
        if "PixelData" in ds:
            ds["PixelData"].is_undefined_length = transfer_syntax.is_compressed
        meta = DicomBytesIO()
        meta.is_little_endian, meta.is_implicit_VR = True, False
        meta.write(PREAMBLE)
        write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
        parts = [meta.getvalue()]
        character_set = ds.get("SpecificCharacterSet", default_encoding)
        for tag in sorted(ds.keys()):
            element = ds.get_item(tag)
            if isinstance(element, DataElement) and " or " in element.VR:
                correct_ambiguous_vr_element(element, ds, True)
            cached = self._cache.get(tag)
            if (
                cached is None
                or cached[0] is not element.value
                or (cached[1], cached[2]) != (element.VR, implicit_vr)
            ):
                buffer = DicomBytesIO()
                buffer.is_little_endian, buffer.is_implicit_VR = True, implicit_vr
                write_data_element(buffer, element, character_set)
                cached = (element.value, element.VR, implicit_vr, buffer.getvalue())
                self._cache[tag] = cached
            parts.append(cached[3])
        return parts


def write_parts(parts: list[bytes], path: Path) -> int:
    """Write an encoded file; return its size in bytes."""
    with path.open("wb") as stream:
        stream.writelines(parts)
    return sum(len(part) for part in parts)
