"""De-identified copies, as the service makes them: source paths in, indexed outputs out, with lineage.

Reads go through the fabric (the caller must be allowed to read every source instance), the work is
the PS3.15 engine of ``medfabric.imaging.deid`` on both cores, and outputs enter the target volume
through the one ingest pipeline, so they are indexed, audited and published like any instance.
The pseudonym secret lives in ``<home>/keys/deid.key``; re-identification maps are stored only
encrypted, readable by a named role (an honest broker).
"""

from __future__ import annotations

import builtins
import json
import multiprocessing
import os
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from medfabric.catalog.schema import deid_runs
from medfabric.errors import InvalidInput, MedfabricError, NotFound, PermissionDenied
from medfabric.imaging.deid import Deidentifier, Option, Profile, get_profile, load_table, verify_deidentified
from medfabric.imaging.deid.dicomio import encode_file, parse_dataset
from medfabric.imaging.ingest.model import IngestItem
from medfabric.security.keys import KEY_SIZE, LocalKms, read_secret, write_secret
from medfabric.service.lineage import edge_rows, insert_edges

if TYPE_CHECKING:
    from medfabric.service.fabric import Fabric

SECRET_FILE = "keys/deid.key"
BATCH = 64
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class InstanceReport:
    source: str
    status: str  # stored | duplicate | quarantined | rejected | failed
    output: str | None = None
    reason: str | None = None
    actions: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"source": self.source, "status": self.status}
        if self.output:
            document["output"] = self.output
        if self.reason:
            document["reason"] = self.reason
        if self.actions:
            document["actions"] = self.actions
        return document


@dataclass
class DeidRun:
    run_id: str
    profile: str
    options: tuple[str, ...]
    instances: list[InstanceReport] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for item in self.instances:
            result[item.status] = result.get(item.status, 0) + 1
        return result

    def as_json(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "profile": self.profile,
            "options": list(self.options),
            "counts": self.counts(),
            "instances": [item.as_json() for item in self.instances],
        }


@dataclass(frozen=True)
class _Done:
    source: str
    output: bytes | None
    quarantined: str | None
    error: str | None
    actions: dict[str, int]
    reid: tuple[tuple[str, str, str], ...]


_engine: Deidentifier | None = None


def _start_worker(profile: Profile, secret: bytes) -> None:
    global _engine
    _engine = Deidentifier(profile, secret)


def _deidentify(item: tuple[str, bytes]) -> _Done:
    """One instance, in a worker process (or in this one, for a few)."""
    assert _engine is not None
    source, data = item
    try:
        outcome = _engine.deidentify(parse_dataset(data, source), in_place=True)
    except MedfabricError as error:
        return _Done(source, None, None, error.message, {}, ())
    actions: dict[str, int] = {}
    for count in outcome.actions:
        actions[count.action] = actions.get(count.action, 0) + count.occurrences
    if outcome.dataset is None:
        return _Done(source, None, outcome.quarantined, None, actions, ())
    reid = tuple((pair.attribute, pair.original, pair.pseudonym) for pair in outcome.reid_pairs)
    return _Done(source, encode_file(outcome.dataset), None, None, actions, reid)


def resolve_profile(name: str | Profile, options: Sequence[str] = ()) -> Profile:
    """A built-in profile (basic, longitudinal, research) or a TOML file, plus options by name."""
    if isinstance(name, Profile):
        base = name
    elif name.endswith(".toml"):
        from pathlib import Path

        from medfabric.imaging.deid import load_profile

        base = load_profile(Path(name))
    else:
        base = get_profile(name)
    if not options:
        return base
    try:
        chosen = [Option(option.strip().replace("-", "_").lower()) for option in options if option.strip()]
    except ValueError as error:
        known = ", ".join(option.value for option in Option)
        raise InvalidInput(f"unknown de-identification option: {error} (known: {known})") from None
    return base.extend(f"{base.name}+{'+'.join(option.value for option in chosen)}", options=chosen)


class DeidService:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    def secret(self) -> bytes:
        """The pseudonym secret (created on first use): the same secret, the same pseudonyms."""
        path = self.fabric.config.home / SECRET_FILE
        if not path.exists():
            write_secret(path, os.urandom(KEY_SIZE))
        return read_secret(path, "de-identification secret")

    def _sources(self, source: str) -> list[str]:
        info = self.fabric.fs.stat(source)
        if info.type == "file":
            return [info.path]
        return [
            item.path
            for _dir, _subdirs, files in self.fabric.fs.walk(source)
            for item in files
            if item.type == "file"
        ]

    def deidentify(
        self,
        source: str,
        target: str,
        *,
        profile: str | Profile = "basic",
        options: Sequence[str] = (),
        reid_role: str | None = None,
        progress: Progress | None = None,
        workers: int | None = None,
    ) -> DeidRun:
        """De-identify every instance under ``source`` into the volume that holds ``target``."""
        fabric = self.fabric
        chosen = resolve_profile(profile, options)
        target_volume = fabric.fs.stat(target).volume
        sources = self._sources(source)
        run = DeidRun(
            str(uuid.uuid4()), chosen.name, tuple(sorted(option.value for option in chosen.options))
        )
        reid: dict[str, list[tuple[str, str, str]]] = {}
        secret = self.secret()
        processes = workers if workers is not None else (os.cpu_count() or 2)
        pool = None
        if processes > 1 and len(sources) >= 2 * BATCH:
            pool = ProcessPoolExecutor(
                processes,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_start_worker,
                initargs=(chosen, secret),
            )
        else:
            _start_worker(chosen, secret)
        params = {
            "profile": chosen.name,
            "options": list(run.options),
            "table": load_table().edition,
            "run": run.run_id,
        }
        try:
            with fabric.access("dicom deidentify", source) as note:
                note.detail = f"to {target} with {chosen.name}"
                for start in range(0, len(sources), BATCH):
                    batch = [(path, fabric.fs.read(path)) for path in sources[start : start + BATCH]]
                    done = (
                        list(pool.map(_deidentify, batch))
                        if pool is not None
                        else [_deidentify(i) for i in batch]
                    )
                    self._store(run, done, target_volume, params, reid)
                    if progress is not None:
                        progress(len(run.instances), len(sources))
        finally:
            if pool is not None:
                pool.shutdown()
        self._record_run(run, source, target, params, reid_role, reid)
        return run

    def _store(
        self,
        run: DeidRun,
        done: list[_Done],
        volume: str,
        params: dict[str, Any],
        reid: dict[str, list[tuple[str, str, str]]],
    ) -> None:
        fabric = self.fabric
        outputs = [item for item in done if item.output is not None]
        report = (
            fabric.dicom.ingest(
                [IngestItem(item.output or b"", item.source) for item in outputs], volume=volume
            )
            if outputs
            else None
        )
        by_source = {outcome.source: outcome for outcome in report.outcomes} if report is not None else {}
        edges: list[tuple[str, str]] = []
        for item in done:
            if item.quarantined is not None:
                run.instances.append(
                    InstanceReport(item.source, "quarantined", reason=item.quarantined, actions=item.actions)
                )
                continue
            if item.error is not None:
                run.instances.append(InstanceReport(item.source, "rejected", reason=item.error))
                continue
            outcome = by_source[item.source]
            reason = outcome.message or outcome.reason or (outcome.error.message if outcome.error else None)
            run.instances.append(
                InstanceReport(item.source, outcome.status, outcome.path, reason or None, item.actions)
            )
            if outcome.path is not None and outcome.status in ("stored", "duplicate"):
                edges.append((outcome.path, item.source))
                reid[outcome.path] = list(item.reid)
        if edges:
            with fabric.catalog.write() as conn:
                for output, source in edges:
                    insert_edges(
                        conn,
                        edge_rows(
                            [(output, None)],
                            [source],
                            "deidentify",
                            params,
                            fabric.principal.name,
                            fabric.clock.now_ms(),
                        ),
                    )

    def _record_run(
        self,
        run: DeidRun,
        source: str,
        target: str,
        params: dict[str, Any],
        reid_role: str | None,
        reid: dict[str, list[tuple[str, str, str]]],
    ) -> None:
        fabric = self.fabric
        values: dict[str, Any] = {}
        if reid_role is not None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            key = os.urandom(KEY_SIZE)
            key_id, wrapped = LocalKms(fabric.config.home / "keys").wrap(key, context=run.run_id.encode())
            nonce = os.urandom(12)
            plaintext = json.dumps(reid, ensure_ascii=False, sort_keys=True).encode()
            values = {
                "reid_role": reid_role,
                "reid_key_id": key_id,
                "reid_wrapped_key": wrapped,
                "reid_map": nonce + AESGCM(key).encrypt(nonce, plaintext, run.run_id.encode()),
            }
        counts = run.counts()
        with fabric.catalog.write() as conn:
            conn.execute(
                deid_runs.insert().values(
                    run_id=run.run_id,
                    created_at=fabric.clock.now_ms(),
                    principal=fabric.principal.name,
                    source=source,
                    target=target,
                    profile=json.dumps(params, sort_keys=True),
                    instances=len(run.instances),
                    stored=counts.get("stored", 0),
                    quarantined=counts.get("quarantined", 0),
                    **values,
                )
            )

    def clone_volume(
        self,
        name: str,
        source: str,
        *,
        path: str | None = None,
        deidentify: bool = False,
        profile: str | Profile = "basic",
        options: Sequence[str] = (),
        reid_role: str | None = None,
        progress: Progress | None = None,
    ) -> DeidRun | None:
        """A new volume holding a copy of ``source``'s files; with ``deidentify``, de-identified
        copies of its DICOM instances (the non-production copy the seed asks for)."""
        fabric = self.fabric
        original = fabric.volumes.info(source)
        if original.mount_path is None or not original.mounted:
            raise InvalidInput(f"volume {source} is not mounted")
        mount = path or f"/{name}"
        fabric.volumes.create(
            name,
            mount,
            replication=original.replication,
            min_replication=original.min_replication,
            compression=original.compression,
        )
        if deidentify:
            return self.deidentify(
                original.mount_path,
                mount,
                profile=profile,
                options=options,
                reid_role=reid_role,
                progress=progress,
            )
        for entry in fabric.fs.listdir(original.mount_path):
            if not entry.is_mount_point:
                fabric.fs._copy_tree(entry.path, mount.rstrip("/") + "/" + entry.name)
        return None

    def reid_map(self, run_id: str) -> dict[str, list[list[str]]]:
        """The original values of a run's pseudonyms: only for the role the run named (honest broker)."""
        fabric = self.fabric
        with fabric.access("deid reidentify") as note:
            note.detail = f"run {run_id}"
            with fabric.catalog.read() as conn:
                row = conn.execute(sa.select(deid_runs).where(deid_runs.c.run_id == run_id)).first()
            if row is None:
                raise NotFound(f"no de-identification run {run_id}")
            if row.reid_map is None:
                raise NotFound(f"run {run_id} kept no re-identification map")
            if row.reid_role not in fabric.principal.roles:
                raise PermissionDenied(
                    f"only the role {row.reid_role!r} may read run {run_id}'s re-identification map"
                )
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            key = LocalKms(fabric.config.home / "keys").unwrap(
                row.reid_key_id, row.reid_wrapped_key, context=run_id.encode()
            )
            data = bytes(row.reid_map)
            plaintext = AESGCM(key).decrypt(data[:12], data[12:], run_id.encode())
            result: dict[str, list[list[str]]] = json.loads(plaintext)
            return result

    def verify(
        self, path: str, *, profile: str | Profile = "basic", options: Sequence[str] = ()
    ) -> builtins.list[dict[str, Any]]:
        """Check every instance under ``path`` against the profile, and search its bytes for the
        identifying values of the instance it was made from (found through its lineage)."""
        fabric = self.fabric
        chosen = resolve_profile(profile, options)
        findings: builtins.list[dict[str, Any]] = []
        for output in self._sources(path):
            data = fabric.fs.read(output)
            dataset = parse_dataset(data, output)
            phi: builtins.list[str] = []
            for edge in fabric.lineage.show(output):
                if edge.transform == "deidentify" and edge.input.startswith("/"):
                    phi.extend(identifying_values(parse_dataset(fabric.fs.read(edge.input), edge.input)))
            for finding in verify_deidentified(dataset, chosen, source_phi=phi, raw_bytes=data):
                findings.append(
                    {
                        "path": output,
                        "rule": finding.rule,
                        "message": finding.message,
                        "keyword": finding.keyword,
                        "offset": finding.offset,
                    }
                )
        return findings


IDENTIFYING = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "ReferringPhysicianName",
    "InstitutionName",
    "AccessionNumber",
    "PatientBirthName",
    "PatientMotherBirthName",
    "OperatorsName",
    "PerformingPhysicianName",
)


def identifying_values(dataset: Any) -> builtins.list[str]:
    """The values of a source instance that must never appear in its de-identified copy."""
    values: builtins.list[str] = []
    for keyword in IDENTIFYING:
        value = dataset.get(keyword)
        if value is None:
            continue
        items = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
        values.extend(str(item) for item in items if str(item).strip() and len(str(item).strip()) >= 4)
    return values
