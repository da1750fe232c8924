"""The IOD modules every synthetic image shares (PS3.3 C.7–C.12): SOP Common, Patient, General Study,
Patient Study, General Series, Frame of Reference, General Equipment, General Image, Image Pixel.

Only standard attributes with the values a modality would send; the extra hiding places of PHI
(sequences, private tags, free text) are phi.py's business.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydicom import Dataset

from .patients import Patient
from .sites import EQUIPMENT
from .studies import SeriesPlan, StudyPlan


def decimal_string(value: float) -> str:
    """A DS value (at most 16 characters) without float noise such as 0.30000000000000004."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def shifted_time(date: str, time: str, seconds: float) -> tuple[str, str]:
    """(DA, TM) of a moment `seconds` after (date, time): acquisitions follow the study start."""
    moment = datetime.strptime(date + time, "%Y%m%d%H%M%S") + timedelta(seconds=seconds)
    return moment.strftime("%Y%m%d"), moment.strftime("%H%M%S.%f")[:10]


def patient_age(birth_date: str, study_date: str) -> str:
    """PatientAge (AS) at the study date, e.g. ``047Y``."""
    born, studied = datetime.strptime(birth_date, "%Y%m%d"), datetime.strptime(study_date, "%Y%m%d")
    years = studied.year - born.year - ((studied.month, studied.day) < (born.month, born.day))
    return f"{years:03d}Y" if years >= 2 else f"{max(1, (studied - born).days // 30):03d}M"


def add_sop_common(ds: Dataset, patient: Patient, study: StudyPlan, sop_class_uid: str) -> None:
    if patient.specific_character_set:
        ds.SpecificCharacterSet = patient.specific_character_set
    ds.SOPClassUID = sop_class_uid
    ds.InstanceCreationDate = study.StudyDate
    ds.InstanceCreationTime = study.StudyTime


def add_patient(ds: Dataset, patient: Patient) -> None:
    ds.PatientName = patient.PatientName
    ds.PatientID = patient.PatientID
    ds.IssuerOfPatientID = patient.IssuerOfPatientID
    ds.TypeOfPatientID = "TEXT"
    ds.PatientBirthDate = patient.PatientBirthDate
    ds.PatientSex = patient.PatientSex
    ds.OtherPatientNames = patient.OtherPatientNames


def add_general_study(ds: Dataset, study: StudyPlan) -> None:
    ds.StudyInstanceUID = study.StudyInstanceUID
    ds.StudyDate = study.StudyDate
    ds.StudyTime = study.StudyTime
    ds.ReferringPhysicianName = study.ReferringPhysicianName
    ds.StudyID = study.StudyID
    ds.AccessionNumber = study.AccessionNumber
    ds.PhysiciansOfRecord = study.ReferringPhysicianName
    ds.NameOfPhysiciansReadingStudy = study.reading_physician


def add_patient_study(ds: Dataset, patient: Patient, study: StudyPlan) -> None:
    ds.PatientAge = patient_age(patient.PatientBirthDate, study.StudyDate)
    ds.PatientSize = decimal_string(patient.PatientSize)
    ds.PatientWeight = decimal_string(patient.PatientWeight)


def add_general_series(ds: Dataset, study: StudyPlan, series: SeriesPlan) -> None:
    ds.Modality = series.protocol.Modality
    ds.SeriesInstanceUID = series.SeriesInstanceUID
    ds.SeriesNumber = series.SeriesNumber
    ds.SeriesDate, ds.SeriesTime = shifted_time(study.StudyDate, study.StudyTime, 60.0 * series.SeriesNumber)
    ds.SeriesDescription = series.protocol.SeriesDescription
    ds.ProtocolName = series.protocol.SeriesDescription
    ds.BodyPartExamined = series.protocol.BodyPartExamined
    ds.PerformingPhysicianName = study.reading_physician
    ds.OperatorsName = study.OperatorsName


def add_frame_of_reference(ds: Dataset, series: SeriesPlan) -> None:
    ds.FrameOfReferenceUID = series.FrameOfReferenceUID
    ds.PositionReferenceIndicator = ""


def add_general_equipment(ds: Dataset, study: StudyPlan, modality: str) -> None:
    equipment = EQUIPMENT[modality]
    institution = study.institution
    ds.Manufacturer = equipment.Manufacturer
    ds.InstitutionName = institution.InstitutionName
    ds.InstitutionAddress = institution.InstitutionAddress
    ds.StationName = institution.station_name(modality)
    ds.InstitutionalDepartmentName = institution.InstitutionalDepartmentName
    ds.ManufacturerModelName = equipment.ManufacturerModelName
    ds.DeviceSerialNumber = institution.device_serial_number(modality)
    ds.SoftwareVersions = equipment.SoftwareVersions


def add_general_image(
    ds: Dataset, study: StudyPlan, series: SeriesPlan, instance_number: int, *, seconds_per_instance: float
) -> None:
    """Per-instance General Image attributes; acquisition and content times advance with the instance."""
    ds.InstanceNumber = instance_number
    ds.AcquisitionNumber = 1
    offset = 60.0 * series.SeriesNumber + seconds_per_instance * (instance_number - 1)
    ds.AcquisitionDate, ds.AcquisitionTime = shifted_time(study.StudyDate, study.StudyTime, offset)
    ds.ContentDate, ds.ContentTime = shifted_time(study.StudyDate, study.StudyTime, offset + 2.0)


def add_image_pixel(
    ds: Dataset,
    *,
    rows: int,
    columns: int,
    samples_per_pixel: int,
    photometric_interpretation: str,
    bits_allocated: int,
    bits_stored: int,
    signed: bool,
) -> None:
    """Image Pixel module, minus Pixel Data (set per instance by the encoder)."""
    ds.SamplesPerPixel = samples_per_pixel
    ds.PhotometricInterpretation = photometric_interpretation
    if samples_per_pixel > 1:
        ds.PlanarConfiguration = 0  # interleaved; encoding.py switches to 1 for RLE (PS3.5 G.2)
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
