"""Shared helpers of the ingest tests (this module holds no tests): hand-made instances with exactly
the attributes a test needs, the seed's volumes and routing rules, and small queries on the index."""

from __future__ import annotations

import io
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medfabric.service.fabric import Fabric

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_ABSENT = object()

ROUTES: list[dict[str, Any]] = [
    {"volume": "mri_2024", "modality": "MR", "study_date": {"$gte": "20240101", "$lt": "20250101"}},
    {"volume": "ct_2024", "modality": "CT", "study_date": {"$gte": "20240101", "$lt": "20250101"}},
    {"volume": "mri_studies", "modality": "MR"},
]


def make_instance(
    *,
    patient_id: Any = "P001",
    study_date: Any = "20240115",
    modality: Any = "MR",
    sop_uid: str | None = None,
    series_uid: str = "1.2.826.0.1.3680043.8.498.1",
    study_uid: str = "1.2.826.0.1.3680043.8.498.2",
    patient_name: str = "Doe^Jane",
    issuer: str | None = None,
    instance_number: int = 1,
    pixel_byte: int = 0,
    drop: tuple[str, ...] = (),
    **extra: Any,
) -> bytes:
    """A small, valid MR (or CT) Part 10 file; ``None`` leaves an attribute out, ``drop`` removes any."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = CT_IMAGE_STORAGE if modality == "CT" else MR_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.AccessionNumber = "A0001"
    ds.StudyDescription = "Test study"
    ds.SeriesDescription = "Test series"
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    for keyword, value in (("PatientID", patient_id), ("StudyDate", study_date), ("Modality", modality)):
        if value is not None:
            setattr(ds, keyword, value)
    if issuer is not None:
        ds.IssuerOfPatientID = issuer
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    ds.Rows = 4
    ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = bytes([pixel_byte]) * 32
    for keyword in drop:
        delattr(ds, keyword)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID if "SOPClassUID" in ds else MR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID if "SOPInstanceUID" in ds else generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False, implicit_vr=False, little_endian=True)
    return buffer.getvalue()


def seed_volumes(fabric: Fabric, *, routes: bool = True) -> None:
    """The seed's volumes, with the demo's routing rules and medical_images as the default."""
    fabric.volumes.create("mri_studies", "/mri_studies")
    fabric.volumes.create("medical_images", "/medical_images")
    fabric.volumes.create("mri_2024", "/medical_images/mri/2024", parent_volume="medical_images")
    fabric.volumes.create("ct_2024", "/medical_images/ct/2024", parent_volume="medical_images")
    if routes:
        fabric.dicom.configure(routes=ROUTES, default_volume="medical_images")


def instance_rows(fabric: Fabric, condition: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return fabric.dicom.find("instance", condition)
