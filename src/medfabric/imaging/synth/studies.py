"""Acquisition protocols and the plan of studies and series for each synthetic patient.

A plan says what to acquire (modality, dates, staff, series, image sizes, transfer syntax); it holds
no pixels and writes nothing. Plans depend only on (seed, namespace, patient, study index).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydicom import uid

from .patients import Patient, patient_rng, pick
from .sites import INSTITUTIONS, Institution
from .uids import derive_uid

Size = Literal["small", "full"]

TRANSFER_SYNTAXES: tuple[str, ...] = (
    uid.ExplicitVRLittleEndian,
    uid.ImplicitVRLittleEndian,
    uid.RLELossless,
    uid.JPEG2000Lossless,
    uid.JPEGLSLossless,
)


@dataclass(frozen=True)
class Protocol:
    """One kind of series: its IOD, description, anatomy and matrix size."""

    key: str
    Modality: str
    SOPClassUID: str
    SeriesDescription: str
    BodyPartExamined: str
    small_shape: tuple[int, int]  # (Rows, Columns)
    full_shape: tuple[int, int]
    small_instances: int
    full_instances: int

    def shape(self, size: Size) -> tuple[int, int]:
        return self.small_shape if size == "small" else self.full_shape

    def instances(self, size: Size) -> int:
        return self.small_instances if size == "small" else self.full_instances


PROTOCOLS: dict[str, Protocol] = {
    p.key: p
    for p in (
        Protocol(
            "CT_SOFT", "CT", uid.CTImageStorage, "Thorax 5.0 B30f", "CHEST", (64, 64), (512, 512), 6, 40
        ),
        Protocol(
            "CT_LUNG", "CT", uid.CTImageStorage, "Thorax 5.0 B70f Lung", "CHEST", (64, 64), (512, 512), 6, 40
        ),
        Protocol("MR_T1", "MR", uid.MRImageStorage, "t1_se_tra", "HEAD", (64, 64), (256, 256), 5, 24),
        Protocol("MR_T2", "MR", uid.MRImageStorage, "t2_tse_tra", "HEAD", (64, 64), (256, 256), 5, 24),
        Protocol(
            "CR_PA",
            "CR",
            uid.ComputedRadiographyImageStorage,
            "Chest PA",
            "CHEST",
            (250, 205),
            (2500, 2048),
            1,
            1,
        ),
        Protocol(
            "CR_LAT",
            "CR",
            uid.ComputedRadiographyImageStorage,
            "Chest lateral",
            "CHEST",
            (250, 205),
            (2500, 2048),
            1,
            1,
        ),
        Protocol(
            "US_ABDOMEN", "US", uid.UltrasoundImageStorage, "Abdomen", "ABDOMEN", (120, 160), (480, 640), 3, 3
        ),
        Protocol(
            "SC_SCREEN",
            "OT",
            uid.SecondaryCaptureImageStorage,
            "Screen capture",
            "CHEST",
            (48, 64),
            (768, 1024),
            1,
            1,
        ),
    )
}


@dataclass(frozen=True)
class StudyType:
    StudyDescription: str
    protocols: tuple[str, ...]
    procedure_code: tuple[str, str, str]  # (CodeValue, CodingSchemeDesignator, CodeMeaning)


# Local procedure codes ("99" prefix: a private coding scheme, PS3.16 8.2).
STUDY_TYPES: dict[str, StudyType] = {
    "CT": StudyType(
        "CT CHEST W CONTRAST", ("CT_SOFT", "CT_LUNG"), ("CTTHX", "99MEDFAB", "CT chest with contrast")
    ),
    "MR": StudyType(
        "MR HEAD WO CONTRAST", ("MR_T1", "MR_T2"), ("MRHEAD", "99MEDFAB", "MR head without contrast")
    ),
    "CR": StudyType(
        "XR CHEST PA LAT", ("CR_PA", "CR_LAT"), ("XRCHEST", "99MEDFAB", "XR chest PA and lateral")
    ),
    "US": StudyType("US ABDOMEN COMPLETE", ("US_ABDOMEN",), ("USABD", "99MEDFAB", "US abdomen complete")),
    "OT": StudyType("OUTSIDE IMAGE", ("SC_SCREEN",), ("SCEXT", "99MEDFAB", "Outside image capture")),
}

# The corpus's studies cycle through this list, so a few patients already cover every modality.
CORPUS_MODALITIES: tuple[str, ...] = ("CT", "MR", "CR", "US", "OT")
CORPUS_YEARS: tuple[int, ...] = (2023, 2024, 2025)


@dataclass(frozen=True)
class SeriesPlan:
    directory: str
    SeriesNumber: int
    SeriesInstanceUID: str
    FrameOfReferenceUID: str
    protocol: Protocol
    instances: int
    Rows: int
    Columns: int
    transfer_syntax: str


@dataclass(frozen=True)
class StudyPlan:
    index: int
    directory: str
    namespace: str  # "corpus" or "bulk": keeps UIDs of different corpora of one seed apart
    StudyInstanceUID: str
    StudyDate: str
    StudyTime: str
    StudyID: str
    AccessionNumber: str
    Modality: str
    study_type: StudyType
    institution: Institution
    ReferringPhysicianName: str
    reading_physician: str
    OperatorsName: str
    series: tuple[SeriesPlan, ...]

    def phi(self) -> dict[str, list[str]]:
        """Identifying strings this study plants, by the attribute they come from."""
        return {
            "AccessionNumber": [self.AccessionNumber],
            "PhysicianNames": [self.ReferringPhysicianName, self.reading_physician],
            "OperatorsName": [self.OperatorsName],
            "InstitutionName": [self.institution.InstitutionName],
            "InstitutionAddress": [self.institution.InstitutionAddress],
            "StationName": [self.institution.station_name(self.Modality)],
            "DeviceSerialNumber": [self.institution.device_serial_number(self.Modality)],
        }


@dataclass(frozen=True)
class SeriesRequest:
    """What a caller wants in one series; the planner fills in UIDs and numbering."""

    protocol: str
    instances: int
    transfer_syntax: str


def plan_study(
    patient: Patient,
    *,
    seed: int,
    namespace: str,
    study_index: int,
    modality: str,
    year: int,
    series: tuple[SeriesRequest, ...],
    size: Size,
) -> StudyPlan:
    rng = patient_rng(seed, patient.index, f"{namespace}/study/{study_index}")
    institution = pick(rng, INSTITUTIONS[patient.culture.key])
    month, day = int(rng.integers(1, 13)), int(rng.integers(1, 29))
    hour, minute, second = int(rng.integers(7, 19)), int(rng.integers(60)), int(rng.integers(60))
    study_date = f"{year:04d}{month:02d}{day:02d}"
    check_digits = int(rng.integers(100))
    study_uid = derive_uid(seed, namespace, "study", patient.index, study_index)
    series_plans = []
    for number, request in enumerate(series, start=1):
        protocol = PROTOCOLS[request.protocol]
        rows, columns = protocol.shape(size)
        series_plans.append(
            SeriesPlan(
                directory=f"SER{number:03d}",
                SeriesNumber=number,
                SeriesInstanceUID=derive_uid(seed, namespace, "series", patient.index, study_index, number),
                # One frame of reference per study: its series were acquired without moving the patient.
                FrameOfReferenceUID=derive_uid(
                    seed, namespace, "frame-of-reference", patient.index, study_index
                ),
                protocol=protocol,
                instances=request.instances,
                Rows=rows,
                Columns=columns,
                transfer_syntax=request.transfer_syntax,
            )
        )
    return StudyPlan(
        index=study_index,
        directory=f"STD{study_index + 1:03d}",
        namespace=namespace,
        StudyInstanceUID=study_uid,
        StudyDate=study_date,
        StudyTime=f"{hour:02d}{minute:02d}{second:02d}",
        StudyID=f"{int(rng.integers(1000, 9999))}",
        AccessionNumber=f"A{year % 100:02d}{patient.index + 1:05d}{study_index + 1:02d}{check_digits:02d}",
        Modality=modality,
        study_type=STUDY_TYPES[modality],
        institution=institution,
        ReferringPhysicianName=pick(rng, institution.referring_physicians),
        reading_physician=pick(rng, institution.radiologists),
        OperatorsName=pick(rng, institution.operators),
        series=tuple(series_plans),
    )


def plan_corpus_studies(patient: Patient, *, seed: int, size: Size) -> tuple[StudyPlan, ...]:
    """Three studies, one per year 2023–2025; modalities and transfer syntaxes rotate across patients."""
    studies = []
    series_ordinal = patient.index * 7
    for study_index, year in enumerate(CORPUS_YEARS):
        modality = CORPUS_MODALITIES[
            (patient.index * len(CORPUS_YEARS) + study_index) % len(CORPUS_MODALITIES)
        ]
        requests = []
        for protocol_key in STUDY_TYPES[modality].protocols:
            transfer_syntax = TRANSFER_SYNTAXES[series_ordinal % len(TRANSFER_SYNTAXES)]
            series_ordinal += 1
            requests.append(
                SeriesRequest(protocol_key, PROTOCOLS[protocol_key].instances(size), transfer_syntax)
            )
        studies.append(
            plan_study(
                patient,
                seed=seed,
                namespace="corpus",
                study_index=study_index,
                modality=modality,
                year=year,
                series=tuple(requests),
                size=size,
            )
        )
    return tuple(studies)
