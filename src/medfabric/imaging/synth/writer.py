"""Writes one planned series as Part 10 files in a modality-export layout
(<patient>/<study>/<series>/IMG00001.dcm) and runs such jobs on worker processes.

Each job rebuilds its patient and plan from (seed, indexes), so the bytes of a file never depend
on which process wrote it or in what order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydicom import Dataset

from .encoding import InstanceEncoder, set_pixel_data, write_parts
from .modalities import SOURCES
from .modules import (
    add_general_equipment,
    add_general_image,
    add_general_series,
    add_general_study,
    add_patient,
    add_patient_study,
    add_sop_common,
)
from .patients import Patient
from .phi import (
    add_patient_demographics,
    add_private_phi,
    add_request_attributes,
    add_study_phi,
    image_comments,
)
from .studies import SeriesPlan, StudyPlan
from .uids import derive_uid


@dataclass(frozen=True)
class FileRecord:
    """One written instance, as the manifest lists it."""

    path: str  # relative to the corpus root, "/"-separated
    PatientID: str
    SOPClassUID: str
    SOPInstanceUID: str
    StudyInstanceUID: str
    SeriesInstanceUID: str
    Modality: str
    StudyDate: str
    TransferSyntaxUID: str
    size: int


def series_header(patient: Patient, study: StudyPlan, series: SeriesPlan, seed: int) -> Dataset:
    """Every attribute shared by the instances of `series`, PHI hiding places included."""
    ds = Dataset()
    add_sop_common(ds, patient, study, series.protocol.SOPClassUID)
    add_patient(ds, patient)
    add_patient_demographics(
        ds, patient, referenced_patient_uid=derive_uid(seed, study.namespace, "patient", patient.index)
    )
    add_general_study(ds, study)
    add_study_phi(ds, patient, study)
    add_patient_study(ds, patient, study)
    add_general_series(ds, study, series)
    add_request_attributes(ds, patient, study)
    add_general_equipment(ds, study, series.protocol.Modality)
    ds.ImageComments = image_comments(patient)
    ds.LossyImageCompression = "00"
    add_private_phi(ds, patient)
    return ds


def render_series(patient: Patient, study: StudyPlan, series: SeriesPlan, seed: int) -> Iterator[Dataset]:
    """Yield each instance of `series`, pixels encoded; the same Dataset object, updated in place."""
    source = SOURCES[series.protocol.Modality](patient, study, series, seed)
    ds = series_header(patient, study, series, seed)
    source.add_series_attributes(ds)
    for instance_number in range(1, series.instances + 1):
        ds.SOPInstanceUID = derive_uid(
            seed,
            study.namespace,
            "instance",
            patient.index,
            study.index,
            series.SeriesNumber,
            instance_number,
        )
        add_general_image(
            ds, study, series, instance_number, seconds_per_instance=source.seconds_per_instance
        )
        set_pixel_data(ds, source.add_instance(ds, instance_number), series.transfer_syntax)
        yield ds


def write_series(
    root: Path, patient: Patient, study: StudyPlan, series: SeriesPlan, seed: int
) -> list[FileRecord]:
    directory = root / patient.directory / study.directory / series.directory
    directory.mkdir(parents=True, exist_ok=True)
    encoder = InstanceEncoder()
    records = []
    for ds in render_series(patient, study, series, seed):
        path = directory / f"IMG{ds.InstanceNumber:05d}.dcm"
        size = write_parts(encoder.encode(ds), path)
        records.append(
            FileRecord(
                path=path.relative_to(root).as_posix(),
                PatientID=patient.PatientID,
                SOPClassUID=series.protocol.SOPClassUID,
                SOPInstanceUID=ds.SOPInstanceUID,
                StudyInstanceUID=study.StudyInstanceUID,
                SeriesInstanceUID=series.SeriesInstanceUID,
                Modality=series.protocol.Modality,
                StudyDate=study.StudyDate,
                TransferSyntaxUID=series.transfer_syntax,
                size=size,
            )
        )
    return records


JobT = TypeVar("JobT")


def run_jobs(
    job: Callable[[JobT], list[FileRecord]], arguments: Iterable[JobT], workers: int
) -> list[FileRecord]:
    """Run `job` over `arguments` (in this process when workers == 1); records sorted by path."""
    arguments = list(arguments)
    if workers <= 1 or len(arguments) <= 1:
        results = [job(argument) for argument in arguments]
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(arguments))) as pool:
            results = list(pool.map(job, arguments))
    return sorted((record for records in results for record in records), key=lambda record: record.path)
