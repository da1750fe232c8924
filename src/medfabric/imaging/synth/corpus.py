"""The public entry points: a realistic mixed corpus (`generate_corpus`), a large CT corpus for
the ingest benchmark (`generate_ct_series_bulk`), and the corpus.json manifest both write.

Files are written into OUT, overwriting same-named files; nothing else in OUT is touched.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType

from pydicom import uid

from medfabric.errors import InvalidInput

from .patients import Patient, make_patient
from .phi import BLOB_PRIVATE_CREATOR, PHI_LOCATIONS, PRIVATE_CREATOR
from .studies import (
    CORPUS_YEARS,
    TRANSFER_SYNTAXES,
    SeriesRequest,
    Size,
    StudyPlan,
    plan_corpus_studies,
    plan_study,
)
from .writer import FileRecord, run_jobs, write_series

MANIFEST_NAME = "corpus.json"
MANIFEST_FORMAT = 1
BULK_SERIES_INSTANCES = {"small": 50, "full": 250}  # slices per CT series in the bulk corpus


@dataclass(frozen=True)
class CorpusSummary:
    """What a generator wrote: counts per Modality, transfer syntax and SOP Class, and the manifest."""

    root: Path
    manifest: Path
    patients: int
    studies: int
    series: int
    files: int
    total_bytes: int
    by_modality: Mapping[str, int]
    by_transfer_syntax: Mapping[str, int]
    by_sop_class: Mapping[str, int]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise InvalidInput(message)


def _check_common(size: str, workers: int) -> None:
    _check(size in ("small", "full"), f"size must be 'small' or 'full', not {size!r}")
    _check(workers >= 1, f"workers must be at least 1, not {workers}")


# ---- the mixed corpus ------------------------------------------------------------------------


def _corpus_job(argument: tuple[Path, int, Size, int]) -> list[FileRecord]:
    root, seed, size, patient_index = argument
    patient = make_patient(seed, patient_index)
    return [
        record
        for study in plan_corpus_studies(patient, seed=seed, size=size)
        for series in study.series
        for record in write_series(root, patient, study, series, seed)
    ]


def generate_corpus(
    out: Path, *, patients: int = 4, seed: int = 0, size: Size = "small", workers: int = 1
) -> CorpusSummary:
    """Write a mixed corpus (CT, MR, CR, US, SC; five transfer syntaxes; PHI planted) into `out`.

    Every patient has three studies (2023, 2024, 2025). The same arguments give byte-identical files.
    """
    _check(patients >= 1, f"patients must be at least 1, not {patients}")
    _check_common(size, workers)
    out = Path(out)
    records = run_jobs(_corpus_job, [(out, seed, size, index) for index in range(patients)], workers)
    people = [make_patient(seed, index) for index in range(patients)]
    plans = [(person, plan_corpus_studies(person, seed=seed, size=size)) for person in people]
    return _finish(out, "corpus", seed, size, plans, records)


# ---- the bulk CT corpus ------------------------------------------------------------------------


def _bulk_plan(
    patient: Patient, seed: int, size: Size, study_index: int, instances: int, transfer_syntax: str
) -> StudyPlan:
    return plan_study(
        patient,
        seed=seed,
        namespace="bulk",
        study_index=study_index,
        modality="CT",
        year=CORPUS_YEARS[(patient.index + study_index) % len(CORPUS_YEARS)],
        series=(SeriesRequest("CT_SOFT", instances, transfer_syntax),),
        size=size,
    )


def _bulk_layout(instances: int, size: Size) -> list[tuple[int, int, int]]:
    """(patient index, study index, slices) per series: three one-series studies per patient."""
    per_series = BULK_SERIES_INSTANCES[size]
    counts = [per_series] * (instances // per_series) + (
        [instances % per_series] if instances % per_series else []
    )
    return [
        (ordinal // len(CORPUS_YEARS), ordinal % len(CORPUS_YEARS), count)
        for ordinal, count in enumerate(counts)
    ]


def _bulk_job(argument: tuple[Path, int, Size, str, int, int, int]) -> list[FileRecord]:
    root, seed, size, transfer_syntax, patient_index, study_index, instances = argument
    patient = make_patient(seed, patient_index)
    study = _bulk_plan(patient, seed, size, study_index, instances, transfer_syntax)
    return write_series(root, patient, study, study.series[0], seed)


def generate_ct_series_bulk(
    out: Path,
    *,
    instances: int,
    seed: int = 0,
    size: Size = "full",
    workers: int = 1,
    transfer_syntax: str = uid.ExplicitVRLittleEndian,
) -> CorpusSummary:
    """Write `instances` CT Image Storage instances for the ingest benchmark: 512×512 int16, about
    528 kB each, in axial series of 250 slices when size="full" (64×64 in series of 50 when "small"),
    one series per study, three studies (2023–2025) per patient, PHI planted as in the corpus.

    Pixels come from cached phantom templates plus a window of seeded noise, so generation is
    dominated by writing the files; `workers` processes share the series.
    """
    _check(instances >= 1, f"instances must be at least 1, not {instances}")
    _check(transfer_syntax in TRANSFER_SYNTAXES, f"unsupported transfer syntax {transfer_syntax!r}")
    _check_common(size, workers)
    out = Path(out)
    layout = _bulk_layout(instances, size)
    records = run_jobs(
        _bulk_job, [(out, seed, size, transfer_syntax, p, s, n) for p, s, n in layout], workers
    )
    studies_by_patient: dict[int, list[StudyPlan]] = {}
    for patient_index, study_index, count in layout:
        patient = make_patient(seed, patient_index)
        studies_by_patient.setdefault(patient_index, []).append(
            _bulk_plan(patient, seed, size, study_index, count, transfer_syntax)
        )
    plans = [(make_patient(seed, index), tuple(studies)) for index, studies in studies_by_patient.items()]
    return _finish(out, "bulk", seed, size, plans, records)


# ---- manifest and summary --------------------------------------------------------------------------


def _patient_entry(patient: Patient, studies: tuple[StudyPlan, ...]) -> dict[str, object]:
    phi: dict[str, list[str]] = patient.phi()
    for study in studies:
        for category, values in study.phi().items():
            phi.setdefault(category, []).extend(v for v in values if v not in phi.get(category, []))
    return {
        "directory": patient.directory,
        "PatientID": patient.PatientID,
        "PatientName": patient.PatientName,
        "SpecificCharacterSet": patient.specific_character_set,
        "studies": [
            {
                "StudyInstanceUID": s.StudyInstanceUID,
                "StudyDate": s.StudyDate,
                "Modality": s.Modality,
                "AccessionNumber": s.AccessionNumber,
            }
            for s in studies
        ],
        "phi": phi,
        "phi_strings": sorted({value for values in phi.values() for value in values}),
    }


def _finish(
    out: Path,
    kind: str,
    seed: int,
    size: Size,
    plans: list[tuple[Patient, tuple[StudyPlan, ...]]],
    records: list[FileRecord],
) -> CorpusSummary:
    manifest = {
        "format": MANIFEST_FORMAT,
        "generator": "medfabric.imaging.synth",
        "kind": kind,
        "seed": seed,
        "size": size,
        "private_creators": [PRIVATE_CREATOR, BLOB_PRIVATE_CREATOR],
        "phi_locations": list(PHI_LOCATIONS),
        "patients": [_patient_entry(patient, studies) for patient, studies in plans],
        "files": [asdict(record) for record in records],
    }
    manifest_path = out / MANIFEST_NAME
    out.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return CorpusSummary(
        root=out,
        manifest=manifest_path,
        patients=len(plans),
        studies=sum(len(studies) for _, studies in plans),
        series=len({record.SeriesInstanceUID for record in records}),
        files=len(records),
        total_bytes=sum(record.size for record in records),
        by_modality=MappingProxyType(dict(sorted(Counter(r.Modality for r in records).items()))),
        by_transfer_syntax=MappingProxyType(
            dict(sorted(Counter(r.TransferSyntaxUID for r in records).items()))
        ),
        by_sop_class=MappingProxyType(dict(sorted(Counter(r.SOPClassUID for r in records).items()))),
    )
