"""The imaging index, write side: patients / studies / series / instances rows, and their counts.

Everything here runs inside a transaction the caller owns (ingest's: the one that also writes the
files' namespace rows), so the index and the namespace commit together. Never commits, never reads
files. Rows are found by their DICOM keys: (PatientID, IssuerOfPatientID), StudyInstanceUID,
SeriesInstanceUID, (SOPInstanceUID, version).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.catalog.engine import chunked, insert_ignoring_duplicates
from medfabric.catalog.schema import dicom_instances, dicom_patients, dicom_series, dicom_studies, entries
from medfabric.imaging.ingest.model import ParsedInstance


@dataclass(frozen=True)
class InstanceRecord:
    """One stored object to index: what was parsed, and where it was put."""

    parsed: ParsedInstance
    volume_id: int
    ino: int
    path: str
    version: int
    ingested_at: int


@dataclass(frozen=True)
class StoredInstance:
    """An index row of an instance, and whether its file is still in the namespace."""

    id: int
    sop_uid: str
    version: int
    latest: bool
    digest: bytes
    volume_id: int
    ino: int
    path: str
    series_pk: int
    live: bool


def lookup(conn: Connection, sop_uids: Iterable[str]) -> dict[str, list[StoredInstance]]:
    """Every indexed version of these SOP Instance UIDs, oldest first."""
    live = (
        sa.select(entries.c.ino)
        .where(
            entries.c.volume_id == dicom_instances.c.volume_id,
            entries.c.ino == dicom_instances.c.ino,
            entries.c.died.is_(None),
        )
        .exists()
    )
    found: dict[str, list[StoredInstance]] = defaultdict(list)
    columns = [dicom_instances.c[name] for name in StoredInstance.__dataclass_fields__ if name != "live"]
    for part in chunked(sorted(set(sop_uids))):
        rows = conn.execute(
            sa.select(*columns, live.label("live"))
            .where(dicom_instances.c.sop_uid.in_(part))
            .order_by(dicom_instances.c.sop_uid, dicom_instances.c.version)
        )
        for row in rows:
            values = dict(row._mapping)
            values["digest"] = bytes(values["digest"])
            values["live"] = bool(values["live"])
            found[row.sop_uid].append(StoredInstance(**values))
    return dict(found)


def delete_instances(conn: Connection, ids: Iterable[int]) -> set[int]:
    """Remove instance rows; returns the series they belonged to (for ``refresh_counts``)."""
    wanted = sorted(set(ids))
    series: set[int] = set()
    for part in chunked(wanted):
        series.update(
            int(pk)
            for pk in conn.execute(
                sa.select(dicom_instances.c.series_pk).where(dicom_instances.c.id.in_(part)).distinct()
            ).scalars()
        )
        conn.execute(dicom_instances.delete().where(dicom_instances.c.id.in_(part)))
    return series


def record(conn: Connection, records: list[InstanceRecord], now_ms: int) -> set[int]:
    """Index newly stored objects, creating their patient, study and series rows as needed.

    Returns the series touched; their counts (and their studies' and patients') are refreshed.
    """
    if not records:
        return set()
    patients = _ensure_patients(conn, records, now_ms)
    studies = _ensure_studies(conn, records, patients, now_ms)
    series = _ensure_series(conn, records, studies, now_ms)
    superseded = [r.parsed.sop_instance_uid for r in records if r.version > 1]
    for part in chunked(superseded):
        conn.execute(dicom_instances.update().where(dicom_instances.c.sop_uid.in_(part)).values(latest=False))
    newest: dict[str, int] = {}
    for item in records:
        newest[item.parsed.sop_instance_uid] = max(newest.get(item.parsed.sop_instance_uid, 0), item.version)
    conn.execute(
        dicom_instances.insert(),
        [
            {
                "sop_uid": item.parsed.sop_instance_uid,
                "version": item.version,
                "latest": item.version == newest[item.parsed.sop_instance_uid],
                "series_pk": series[item.parsed.series_instance_uid],
                "sop_class_uid": item.parsed.sop_class_uid,
                "instance_number": item.parsed.instance_number,
                "transfer_syntax": item.parsed.transfer_syntax_uid,
                "size": item.parsed.size,
                "digest": item.parsed.digest,
                "volume_id": item.volume_id,
                "ino": item.ino,
                "path": item.path,
                "ingested_at": item.ingested_at,
            }
            for item in records
        ],
    )
    touched = set(series.values())
    refresh_counts(conn, touched, now_ms)
    return touched


def _latest_values(
    records: list[InstanceRecord], key: Any, fields: dict[str, str]
) -> dict[Any, dict[str, Any]]:
    """Per key, the last non-empty value of each attribute in the batch (later instances win)."""
    values: dict[Any, dict[str, Any]] = {}
    for item in records:
        current = values.setdefault(key(item.parsed), {})
        for column, attribute in fields.items():
            value = getattr(item.parsed, attribute)
            if value is not None:
                current[column] = value
    return values


def _patient_key(parsed: ParsedInstance) -> tuple[str, str]:
    return (parsed.patient_id or "", parsed.issuer_of_patient_id or "")


def _ensure_patients(
    conn: Connection, records: list[InstanceRecord], now_ms: int
) -> dict[tuple[str, str], int]:
    wanted = _latest_values(
        records,
        _patient_key,
        {"patient_name": "patient_name", "birth_date": "patient_birth_date", "sex": "patient_sex"},
    )
    insert_ignoring_duplicates(
        conn,
        dicom_patients,
        [
            {"patient_id": pid, "issuer": issuer, "study_count": 0, "updated_at": now_ms, **values}
            for (pid, issuer), values in sorted(wanted.items())
        ],
    )
    key = sa.tuple_(dicom_patients.c.patient_id, dicom_patients.c.issuer)
    ids = {
        (row.patient_id, row.issuer): int(row.id)
        for row in conn.execute(
            sa.select(dicom_patients.c.id, dicom_patients.c.patient_id, dicom_patients.c.issuer)
            .where(key.in_(list(wanted)))
            .order_by(dicom_patients.c.id)
            .with_for_update()
        )
    }
    for patient, values in wanted.items():
        if values:
            conn.execute(
                dicom_patients.update()
                .where(dicom_patients.c.id == ids[patient])
                .values(**values, updated_at=now_ms)
            )
    return ids


STUDY_FIELDS = {
    "study_date": "study_date",
    "study_time": "study_time",
    "accession_number": "accession_number",
    "study_description": "study_description",
    "referring_physician_name": "referring_physician_name",
}
SERIES_FIELDS = {
    "modality": "modality",
    "series_number": "series_number",
    "series_description": "series_description",
    "body_part_examined": "body_part_examined",
}


def _ensure_studies(
    conn: Connection, records: list[InstanceRecord], patients: dict[tuple[str, str], int], now_ms: int
) -> dict[str, int]:
    wanted = _latest_values(records, lambda p: p.study_instance_uid, STUDY_FIELDS)
    owner = {item.parsed.study_instance_uid: patients[_patient_key(item.parsed)] for item in records}
    insert_ignoring_duplicates(
        conn,
        dicom_studies,
        [
            {
                "study_uid": uid,
                "patient_pk": owner[uid],
                "modalities": "",
                "series_count": 0,
                "instance_count": 0,
                "updated_at": now_ms,
                **values,
            }
            for uid, values in sorted(wanted.items())
        ],
    )
    ids = _ids(conn, dicom_studies, dicom_studies.c.study_uid, list(wanted))
    for uid, values in wanted.items():
        if values:
            conn.execute(
                dicom_studies.update()
                .where(dicom_studies.c.id == ids[uid])
                .values(**values, updated_at=now_ms)
            )
    return ids


def _ensure_series(
    conn: Connection, records: list[InstanceRecord], studies: dict[str, int], now_ms: int
) -> dict[str, int]:
    wanted = _latest_values(records, lambda p: p.series_instance_uid, SERIES_FIELDS)
    owner = {item.parsed.series_instance_uid: studies[item.parsed.study_instance_uid] for item in records}
    insert_ignoring_duplicates(
        conn,
        dicom_series,
        [
            {"series_uid": uid, "study_pk": owner[uid], "instance_count": 0, "updated_at": now_ms, **values}
            for uid, values in sorted(wanted.items())
        ],
    )
    ids = _ids(conn, dicom_series, dicom_series.c.series_uid, list(wanted))
    for uid, values in wanted.items():
        if values:
            conn.execute(
                dicom_series.update().where(dicom_series.c.id == ids[uid]).values(**values, updated_at=now_ms)
            )
    return ids


def _ids(conn: Connection, table: sa.Table, key: sa.Column[Any], values: list[str]) -> dict[str, int]:
    """Ids by key, locking the rows (PostgreSQL) so concurrent ingests count one after the other."""
    found: dict[str, int] = {}
    for part in chunked(sorted(values)):
        rows = conn.execute(
            sa.select(table.c.id, key).where(key.in_(part)).order_by(table.c.id).with_for_update()
        )
        found.update({str(row[1]): int(row[0]) for row in rows})
    return found


def refresh_counts(conn: Connection, series_pks: Iterable[int], now_ms: int) -> None:
    """Recount the series, then their studies and patients; rows left with nothing are removed."""
    series_ids = sorted(set(series_pks))
    if not series_ids:
        return
    counts: dict[int, int] = {}
    for part in chunked(series_ids):
        counts.update(
            {
                int(pk): int(n)
                for pk, n in conn.execute(
                    sa.select(dicom_instances.c.series_pk, sa.func.count())
                    .where(dicom_instances.c.series_pk.in_(part), dicom_instances.c.latest.is_(True))
                    .group_by(dicom_instances.c.series_pk)
                )
            }
        )
    occupied: set[int] = set()  # series with rows of any version
    study_ids: set[int] = set()
    for part in chunked(series_ids):
        occupied.update(
            int(pk)
            for pk in conn.execute(
                sa.select(dicom_instances.c.series_pk).where(dicom_instances.c.series_pk.in_(part)).distinct()
            ).scalars()
        )
        study_ids.update(
            int(pk)
            for pk in conn.execute(
                sa.select(dicom_series.c.study_pk).where(dicom_series.c.id.in_(part))
            ).scalars()
        )
    for pk in series_ids:
        if pk in occupied:
            conn.execute(
                dicom_series.update()
                .where(dicom_series.c.id == pk)
                .values(instance_count=counts.get(pk, 0), updated_at=now_ms)
            )
        else:
            conn.execute(dicom_series.delete().where(dicom_series.c.id == pk))
    _refresh_studies(conn, sorted(study_ids), now_ms)


def _refresh_studies(conn: Connection, study_ids: list[int], now_ms: int) -> None:
    per_study: dict[int, list[tuple[str | None, int]]] = defaultdict(list)
    patient_ids: set[int] = set()
    for part in chunked(study_ids):
        for study_pk, modality, count in conn.execute(
            sa.select(dicom_series.c.study_pk, dicom_series.c.modality, dicom_series.c.instance_count).where(
                dicom_series.c.study_pk.in_(part)
            )
        ):
            per_study[int(study_pk)].append((modality, int(count)))
        patient_ids.update(
            int(pk)
            for pk in conn.execute(
                sa.select(dicom_studies.c.patient_pk).where(dicom_studies.c.id.in_(part))
            ).scalars()
        )
    for pk in study_ids:
        series = per_study.get(pk, [])
        if not series:
            conn.execute(dicom_studies.delete().where(dicom_studies.c.id == pk))
            continue
        conn.execute(
            dicom_studies.update()
            .where(dicom_studies.c.id == pk)
            .values(
                series_count=len(series),
                instance_count=sum(count for _modality, count in series),
                modalities="\\".join(sorted({modality for modality, _count in series if modality})),
                updated_at=now_ms,
            )
        )
    for pk in sorted(patient_ids):
        studies = conn.execute(
            sa.select(sa.func.count()).select_from(dicom_studies).where(dicom_studies.c.patient_pk == pk)
        ).scalar_one()
        if studies:
            conn.execute(
                dicom_patients.update()
                .where(dicom_patients.c.id == pk)
                .values(study_count=studies, updated_at=now_ms)
            )
        else:
            conn.execute(dicom_patients.delete().where(dicom_patients.c.id == pk))
