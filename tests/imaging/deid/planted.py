"""Small DICOM studies with PHI planted in standard attributes, nested sequences, private tags, overlays
and curves, built from pydicom's CT and MR test files, with the list of what was planted."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
PRIVATE_CREATOR = "ACME PHI 1.0"
PRIVATE_GROUP = 0x0033
UID_ROOT = "1.2.826.0.1.3680043.10.999"


@dataclass(frozen=True)
class PlantedPatient:
    index: int
    name: str
    name_in_text: str
    patient_id: str
    birth_date: str
    charset: str | None
    physician: str = "Smith^Alice^^Dr."
    operator: str = "Jones^Bob"
    institution: str = "Saint Elsewhere Hospital"
    address: str = "12 Harbour Road, Portsmouth"
    station: str = "ELSEWHERE_CT7"
    serial: str = "SN-77-4242-X"
    accession: str = field(default="")

    @property
    def phi(self) -> list[str]:
        """Every identifying string planted for this patient (UIDs excepted)."""
        return [
            self.name,
            self.name_in_text,
            self.patient_id,
            self.birth_date,
            self.physician,
            self.operator,
            self.institution,
            self.address,
            self.station,
            self.serial,
            self.accession,
            f"OTHER-{self.patient_id}",
            "Quimby^Ferdinand",
        ]


PATIENTS = (
    PlantedPatient(0, "Doe^Johnathan", "Johnathan Doe", "MRN-00042", "19700101", None, accession="ACC-9001"),
    PlantedPatient(
        1, "Müller^Jürgen", "Jürgen Müller", "MRN-00077", "19621224", "ISO_IR 100", accession="ACC-9002"
    ),
)
STUDY_DATE = "20240315"


def uid(*parts: int) -> str:
    return ".".join([UID_ROOT, *map(str, parts)])


@dataclass
class PlantedFile:
    path: Path
    patient: PlantedPatient
    study_uid: str
    series_uid: str
    sop_uid: str
    frame_uid: str
    referenced_sop_uid: str | None

    @property
    def source_phi(self) -> list[str]:
        return [*self.patient.phi, self.study_uid, self.series_uid, self.sop_uid, self.frame_uid]


def planted_instance(patient: PlantedPatient, series: int, instance: int, *, modality: str = "CT") -> Dataset:
    """One instance of `patient`'s study (one study per patient; series 1..n; instances 1..n)."""
    ds = dcmread(get_testdata_file("CT_small.dcm" if modality == "CT" else "MR_small.dcm"))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if patient.charset:
        ds.SpecificCharacterSet = patient.charset
    elif "SpecificCharacterSet" in ds:
        del ds.SpecificCharacterSet
    study_uid = uid(patient.index, 1)
    series_uid = uid(patient.index, 1, series)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = uid(patient.index, 1, series, instance)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.FrameOfReferenceUID = uid(patient.index, 1, 0)
    ds.InstanceNumber = instance
    ds.SeriesNumber = series
    # demographics and the people around the study
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = "M"
    ds.PatientAge = "054Y"
    ds.PatientWeight = "81"
    ds.PatientSize = "1.8"
    ds.OtherPatientNames = "Quimby^Ferdinand"
    ds.PatientAddress = patient.address
    ds.ReferringPhysicianName = patient.physician
    ds.OperatorsName = patient.operator
    ds.InstitutionName = patient.institution
    ds.InstitutionAddress = patient.address
    ds.StationName = patient.station
    ds.DeviceSerialNumber = patient.serial
    ds.AccessionNumber = patient.accession
    ds.StudyID = "S42"
    # dates and times
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "InstanceCreationDate"):
        setattr(ds, keyword, STUDY_DATE)
    ds.StudyTime = "101500"
    ds.AcquisitionDateTime = STUDY_DATE + "101500.000000"
    # free text naming the patient
    ds.StudyDescription = f"CT chest {patient.name_in_text}"
    ds.SeriesDescription = f"AXIAL 5mm for {patient.name_in_text}"
    ds.ImageComments = f"Pt {patient.name_in_text}, MRN {patient.patient_id}, DOB {patient.birth_date}"
    # nested sequences: references (kept, remapped), requests (removed), codes (untabled: residual scrub)
    other = Dataset()
    other.PatientID = f"OTHER-{patient.patient_id}"
    ds.OtherPatientIDsSequence = Sequence([other])
    request = Dataset()
    request.AccessionNumber = patient.accession
    request.RequestedProcedureDescription = f"CT for {patient.name_in_text}"
    request.StudyInstanceUID = study_uid
    ds.RequestAttributesSequence = Sequence([request])
    code = Dataset()
    code.CodeValue = "RPID16"
    code.CodingSchemeDesignator = "RADLEX"
    code.CodeMeaning = f"CT chest - {patient.name_in_text}"
    ds.ProcedureCodeSequence = Sequence([code])
    study_ref = Dataset()
    study_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study_ref.ReferencedSOPInstanceUID = study_uid
    ds.ReferencedStudySequence = Sequence([study_ref])
    if instance > 1:
        image_ref = Dataset()
        image_ref.ReferencedSOPClassUID = ds.SOPClassUID
        image_ref.ReferencedSOPInstanceUID = uid(patient.index, 1, series, instance - 1)
        ds.ReferencedImageSequence = Sequence([image_ref])
    elif "ReferencedImageSequence" in ds:
        del ds.ReferencedImageSequence
    # private tags: plain, nested, and an opaque blob
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "PN", patient.name)
    block.add_new(0x02, "LO", patient.patient_id)
    identity = Dataset()
    identity.PatientName = patient.name
    block.add_new(0x03, "SQ", Sequence([identity]))
    block.add_new(0x04, "OB", f"NAME={patient.name};".encode("latin-1").ljust(32, b"\0"))
    # an overlay naming the patient in its comments, and a retired curve
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60000011, "US", 8)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", b"\xff" * 8)
    ds.add_new(0x60004000, "LT", f"Overlay for {patient.name_in_text}")
    ds.add_new(0x50000005, "US", 1)
    return ds


def write_study_set(root: Path, *, series: int = 2, instances: int = 3) -> list[PlantedFile]:
    """Both patients' studies (CT series, then one MR series) as files under `root`."""
    files = []
    for patient in PATIENTS:
        for series_number in range(1, series + 2):
            modality = "MR" if series_number == series + 1 else "CT"
            for number in range(1, instances + 1):
                ds = planted_instance(patient, series_number, number, modality=modality)
                path = root / f"p{patient.index}" / f"s{series_number}" / f"i{number}.dcm"
                path.parent.mkdir(parents=True, exist_ok=True)
                ds.save_as(path, enforce_file_format=True)
                files.append(
                    PlantedFile(
                        path=path,
                        patient=patient,
                        study_uid=ds.StudyInstanceUID,
                        series_uid=ds.SeriesInstanceUID,
                        sop_uid=ds.SOPInstanceUID,
                        frame_uid=ds.FrameOfReferenceUID,
                        referenced_sop_uid=uid(patient.index, 1, series_number, number - 1)
                        if number > 1
                        else None,
                    )
                )
    return files
