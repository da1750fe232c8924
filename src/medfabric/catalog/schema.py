"""The catalog's tables, as the code sees them today (Alembic migrations create them).

Namespace rows carry the volume version range ``[born, died)`` in which they are visible, so a
snapshot is one row naming a version and a mirror's increment is the rows born or died between
two versions. Blob and pack rows are the blob store's index; they know nothing of paths.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy import (
    false as sa_false,
)

# BIGINT primary keys must still autoincrement on SQLite, where only INTEGER PRIMARY KEY does.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
)

# Cluster-wide settings saved by `config save` (shared by every process on the catalog).
config_values = Table(
    "config_values",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("modified_at", BigInteger, nullable=False),
    Column("modified_by", String(200), nullable=False),
)

volumes = Table(
    "volumes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("mount_path", Text, nullable=True),
    Column("mounted", Boolean, nullable=False),
    Column("parent_id", Integer, ForeignKey("volumes.id"), nullable=True),
    Column("type", String(16), nullable=False),  # rw | mirror
    Column("root_ino", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),  # the open version: changes are born in it
    Column("next_ino", BigInteger, nullable=False),
    Column("replication", SmallInteger, nullable=False),
    Column("min_replication", SmallInteger, nullable=False),
    Column("quota", BigInteger, nullable=False),  # bytes; 0 = none
    Column("advisory_quota", BigInteger, nullable=False),
    Column("readonly", Boolean, nullable=False),
    Column("compression", String(16), nullable=False),  # off | zstd
    Column("owner", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),  # ms since the epoch, UTC
    Column("modified_at", BigInteger, nullable=False),
    Column("logical_bytes", BigInteger, nullable=False),  # live files only; snapshots excluded
    Column("file_count", BigInteger, nullable=False),
    Column("dir_count", BigInteger, nullable=False),
    Index(
        "uq_volumes_mount_path",
        "mount_path",
        unique=True,
        sqlite_where=text("mounted"),
        postgresql_where=text("mounted"),
    ),
)

# One row per (entry, version range). Directories, files and symlinks alike.
entries = Table(
    "entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("volume_id", Integer, nullable=False),
    Column("parent_ino", BigInteger, nullable=False),  # 0 for a volume's root directory
    Column("name", Text, nullable=False),
    Column("ino", BigInteger, nullable=False),
    Column("kind", String(1), nullable=False),  # d | f | l
    Column("mode", Integer, nullable=False),  # permission bits only (0o7777)
    Column("owner", String(255), nullable=False),
    Column("grp", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("ctime_ns", BigInteger, nullable=False),
    Column("atime_ns", BigInteger, nullable=False),
    Column("content_id", BigInteger, nullable=True),  # files: the immutable body
    Column("target", Text, nullable=True),  # symlinks
    Column("born", BigInteger, nullable=False),
    Column("died", BigInteger, nullable=True),  # NULL: alive in the open version
    Index(
        "uq_entries_live_name",
        "volume_id",
        "parent_ino",
        "name",
        unique=True,
        sqlite_where=text("died IS NULL"),
        postgresql_where=text("died IS NULL"),
    ),
    Index(
        "ix_entries_live_ino",
        "volume_id",
        "ino",
        sqlite_where=text("died IS NULL"),
        postgresql_where=text("died IS NULL"),
    ),
    Index("ix_entries_history", "volume_id", "parent_ino", "name", "born"),
)

# An immutable file body: an ordered list of extents. Entry versions that differ only in
# metadata (rename, chmod) share one content row.
contents = Table(
    "contents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("volume_id", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("digest", LargeBinary(32), nullable=True),  # BLAKE3 of the whole plaintext, when known
    Column("created_at", BigInteger, nullable=False),
)

extents = Table(
    "extents",
    metadata,
    Column("content_id", BigInteger, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("file_offset", BigInteger, nullable=False),
    Column("length", BigInteger, nullable=False),
    Column("blob_id", LargeBinary(32), nullable=True),  # NULL: a hole (reads as zeros)
    Column("blob_offset", BigInteger, nullable=False),
    Index("ix_extents_blob_id", "blob_id"),
)

# Where the bytes are. The blob index can be rebuilt from the packs alone.
packs = Table(
    "packs",
    metadata,
    Column("id", String(32), primary_key=True),  # 128-bit, time-ordered, hex
    Column("volume_id", Integer, nullable=False),
    Column("state", String(10), nullable=False),  # open | sealed | deleting
    Column("replicas", Text, nullable=False),  # comma-separated location ids
    Column("size", BigInteger, nullable=False),  # bytes committed so far
    Column("blob_count", Integer, nullable=False),
    Column("writer", String(255), nullable=True),  # host:pid of the process appending, if any
    Column("created_at", BigInteger, nullable=False),
    Column("sealed_at", BigInteger, nullable=True),
    Index("ix_packs_volume_id_state", "volume_id", "state"),
)

blobs = Table(
    "blobs",
    metadata,
    Column("volume_id", Integer, primary_key=True),
    Column("blob_id", LargeBinary(32), primary_key=True),
    Column("pack_id", String(32), nullable=False),
    Column("offset", BigInteger, nullable=False),  # of the record header in the pack
    Column("stored_length", BigInteger, nullable=False),  # payload bytes after the codecs
    Column("length", BigInteger, nullable=False),  # plaintext bytes
    Column("codec", SmallInteger, nullable=False),
    Column("orphaned_at", BigInteger, nullable=True),  # set by GC's mark; cleared on reuse
    Index("ix_blobs_pack_id", "pack_id"),
)

locations = Table(
    "locations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),  # local | s3
    Column("uri", Text, nullable=False, unique=True),
    Column("host", String(255), nullable=False),
    Column("state", String(16), nullable=False),  # online | offline
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("volume_id", Integer, ForeignKey("volumes.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("preserved", Boolean, nullable=False),
    Column("owner", String(255), nullable=False),
    Index("uq_snapshots_volume_id_name", "volume_id", "name", unique=True),
)

alarms = Table(
    "alarms",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("entity", String(255), nullable=False),
    Column("description", Text, nullable=False),
    Column("raised_at", BigInteger, nullable=False),
    Column("cleared_at", BigInteger, nullable=True),
    Index(
        "uq_alarms_active",
        "name",
        "entity",
        unique=True,
        sqlite_where=text("cleared_at IS NULL"),
        postgresql_where=text("cleared_at IS NULL"),
    ),
)

nodes = Table(
    "nodes",
    metadata,
    Column("hostname", String(255), primary_key=True),
    Column("services", Text, nullable=False),  # comma-separated
    Column("version", String(50), nullable=False),
    Column("last_seen", BigInteger, nullable=False),
)

# JSON tables (MapR-DB JSON): each is a namespace entry of kind "t"; its documents live in the
# SQL table doc_<id>.
doc_tables = Table(
    "doc_tables",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("volume_id", Integer, nullable=False),
    Column("ino", BigInteger, nullable=False),
    Column("owner", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("uq_doc_tables_volume_id_ino", "volume_id", "ino", unique=True),
)

# Domain tables are appended below, each section headed by the migration that creates it.

# -- Imaging index (migration 0003) --------------------------------------------------------------
# Patients / studies / series / instances with the hot DICOM attributes, written by ingest in the
# same transaction as the namespace rows of the files they describe (docs/design/ingest.md).
# Missing attributes are NULL; counts are kept by ingest and recomputed by `dicom reindex`.

dicom_patients = Table(
    "dicom_patients",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("patient_id", String(64), nullable=False),  # PatientID; "" when the instance had none
    Column("issuer", String(64), nullable=False),  # IssuerOfPatientID; "" when absent
    Column("patient_name", Text, nullable=True),
    Column("birth_date", String(8), nullable=True),
    Column("sex", String(16), nullable=True),
    Column("study_count", Integer, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("uq_dicom_patients_patient_id_issuer", "patient_id", "issuer", unique=True),
)

dicom_studies = Table(
    "dicom_studies",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("study_uid", String(64), nullable=False, unique=True),
    Column("patient_pk", BigInteger, nullable=False),  # dicom_patients.id
    Column("study_date", String(8), nullable=True),
    Column("study_time", String(16), nullable=True),
    Column("accession_number", String(64), nullable=True),
    Column("study_description", Text, nullable=True),
    Column("referring_physician_name", Text, nullable=True),
    Column("modalities", Text, nullable=False),  # ModalitiesInStudy, sorted, "\"-separated
    Column("series_count", Integer, nullable=False),
    Column("instance_count", Integer, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_dicom_studies_patient_pk", "patient_pk"),
    Index("ix_dicom_studies_study_date", "study_date"),
)

dicom_series = Table(
    "dicom_series",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("series_uid", String(64), nullable=False, unique=True),
    Column("study_pk", BigInteger, nullable=False),  # dicom_studies.id
    Column("modality", String(16), nullable=True),
    Column("series_number", Integer, nullable=True),
    Column("series_description", Text, nullable=True),
    Column("body_part_examined", String(64), nullable=True),
    Column("instance_count", Integer, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_dicom_series_study_pk", "study_pk"),
    Index("ix_dicom_series_modality", "modality"),
)

# One row per stored object. A SOP Instance UID has one row per version (the `keep` duplicate
# policy stores a different object under the same UID as version 2, 3, …); `latest` marks the
# newest, which is what the counts count.
dicom_instances = Table(
    "dicom_instances",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("sop_uid", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("latest", Boolean, nullable=False),
    Column("series_pk", BigInteger, nullable=False),  # dicom_series.id
    Column("sop_class_uid", String(64), nullable=False),
    Column("instance_number", Integer, nullable=True),
    Column("transfer_syntax", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("digest", LargeBinary(32), nullable=False),  # BLAKE3-256 of the Part 10 file as received
    Column("volume_id", Integer, nullable=False),
    Column("ino", BigInteger, nullable=False),
    Column("path", Text, nullable=False),
    Column("ingested_at", BigInteger, nullable=False),  # ms since the epoch, UTC
    Index("uq_dicom_instances_sop_uid_version", "sop_uid", "version", unique=True),
    Index("ix_dicom_instances_series_pk", "series_pk"),
    Index("ix_dicom_instances_volume_id_ino", "volume_id", "ino"),
)

# -- Security and governance (migration 0004): principals, ACLs/ACEs, keys, audit, lineage --------

users = Table(
    "users",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("password_hash", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(255), nullable=False),
)

groups = Table(  # groups and roles: a role is a group whose name ACEs write r:NAME
    "groups",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("kind", String(8), primary_key=True),  # group | role
    Column("created_at", BigInteger, nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("user_name", String(255), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("group_name", String(255), primary_key=True),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_id", String(64), primary_key=True),
    Column("user_name", String(255), nullable=False),
    Column("token_hash", Text, nullable=False),  # argon2: only the hash is kept
    Column("description", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
)

volumes.append_column(Column("acl", Text, nullable=False, server_default=""))
volumes.append_column(Column("read_ace", Text, nullable=True))
volumes.append_column(Column("write_ace", Text, nullable=True))
volumes.append_column(Column("audited", Boolean, nullable=False, server_default=sa_false()))
volumes.append_column(Column("audit_ops", Text, nullable=False, server_default=""))
volumes.append_column(Column("audit_coalesce", Integer, nullable=False, server_default="0"))  # minutes
volumes.append_column(Column("encryption", String(16), nullable=False, server_default="off"))
entries.append_column(Column("aces", Text, nullable=True))  # JSON of the entry's file/dir ACEs

volume_keys = Table(  # per-volume keys, wrapped by the fabric's master key (KMS)
    "volume_keys",
    metadata,
    Column("volume_id", Integer, primary_key=True),
    Column("generation", Integer, primary_key=True),
    Column("kms_key_id", String(255), nullable=False),
    Column("wrapped_data_key", LargeBinary, nullable=False),
    Column("wrapped_id_key", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time_us", BigInteger, nullable=False),
    Column("principal", String(255), nullable=False),
    Column("interface", String(16), nullable=False),
    Column("operation", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("volume", String(255), nullable=True),
    Column("path", Text, nullable=True),
    Column("patient_id", Text, nullable=True),
    Column("record", LargeBinary, nullable=False),
    Column("chain_hash", LargeBinary, nullable=False),
    Index("ix_audit_log_time_us", "time_us"),
)

lineage = Table(
    "lineage",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("output", Text, nullable=False),  # a fabric path, as it was when the output was written
    Column("output_ino", BigInteger, nullable=True),  # the output's inode: found again after renames
    Column("input", Text, nullable=False),  # a fabric path, or a URI: file://host/path, dicom://AE@host
    Column("transform", String(255), nullable=False),
    Column("params", Text, nullable=False),
    Column("principal", String(255), nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    Index("ix_lineage_output", "output"),
    Index("ix_lineage_output_ino", "output_ino"),
    Index("ix_lineage_input", "input"),
)

# -- Data protection (migration 0005) -----------------------------------------------------------
# Schedules and the jobs they drive (snapshots, mirror syncs, scrubs, catalog backups), other
# fabrics known by name, and mirror relationships with their sync state and the rows a sync stages
# before it applies them in one transaction (docs/design/schedules.md, docs/design/mirrors.md).

remotes = Table(
    "remotes",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("location", Text, nullable=False),  # a fabric home directory; later an https URL
    Column("fabric_id", String(64), nullable=False),
    Column("fabric_name", String(255), nullable=False),
    Column("added_at", BigInteger, nullable=False),
    Column("added_by", String(255), nullable=False),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("rules", Text, nullable=False),  # JSON list of rules (replication/schedule.py)
    Column("owner", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("modified_at", BigInteger, nullable=False),
)

# What a schedule drives: a snapshot or mirror sync of one volume, a scrub, a catalog backup.
schedule_jobs = Table(
    "schedule_jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("schedule_id", Integer, nullable=False),
    Column("action", String(16), nullable=False),  # snapshot | mirror | scrub | backup
    Column("volume_id", Integer, nullable=True),
    Column("volume_created_at", BigInteger, nullable=True),  # tells a reused volume id apart
    Column("created_at", BigInteger, nullable=False),
    Index("uq_schedule_jobs_action_volume_id", "action", "volume_id", unique=True),
    Index("ix_schedule_jobs_schedule_id", "schedule_id"),
)

# When each rule of each job last ran (catch-up after downtime runs a rule once).
schedule_runs = Table(
    "schedule_runs",
    metadata,
    Column("job_id", Integer, primary_key=True),
    Column("rule", Integer, primary_key=True),
    Column("last_run_at", BigInteger, nullable=False),
)

# Which rule keeps which scheduled snapshot (count retention is per rule).
schedule_snapshots = Table(
    "schedule_snapshots",
    metadata,
    Column("job_id", Integer, primary_key=True),
    Column("rule", Integer, primary_key=True),
    Column("snapshot_id", Integer, primary_key=True),
    Column("created_at", BigInteger, nullable=False),
)

# One row per mirror volume of this fabric: where its source is and how far it has synced.
mirrors = Table(
    "mirrors",
    metadata,
    Column("volume_id", Integer, primary_key=True),
    Column("volume_created_at", BigInteger, nullable=False),
    Column("source_location", Text, nullable=True),  # NULL: this fabric
    Column("source_remote", String(255), nullable=True),
    Column("source_fabric_id", String(64), nullable=False),
    Column("source_fabric_name", String(255), nullable=False),
    Column("source_volume", String(255), nullable=False),
    Column("source_volume_id", Integer, nullable=False),
    Column("blob_scheme", String(80), nullable=False),
    Column("state", String(16), nullable=False),  # idle | syncing | stopped | failed
    Column("owner", String(255), nullable=True),  # host:pid:… of the process syncing
    Column("stop_requested", Boolean, nullable=False),
    Column("synced_snapshot", String(255), nullable=True),  # source snapshot the mirror shows
    Column("synced_version", BigInteger, nullable=True),
    Column("synced_at", BigInteger, nullable=True),
    Column("stale_snapshot", String(255), nullable=True),  # source snapshot still to remove
    Column("pending_snapshot", String(255), nullable=True),  # the sync in progress
    Column("pending_version", BigInteger, nullable=True),
    Column("pending_full", Boolean, nullable=False),
    Column("staged_through", BigInteger, nullable=False),  # source entry id: resume point
    Column("started_at", BigInteger, nullable=True),
    Column("last_duration_ms", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("blobs_sent", BigInteger, nullable=False),
    Column("bytes_sent", BigInteger, nullable=False),
    Column("rows_staged", BigInteger, nullable=False),
)

# Rows of a sync in progress, already translated to the mirror volume's ids; a sync's commit
# moves them into entries/contents/extents in one transaction.
mirror_stage_entries = Table(
    "mirror_stage_entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("volume_id", Integer, nullable=False),
    Column("op", String(4), nullable=False),  # add | drop
    Column("parent_ino", BigInteger, nullable=False),
    Column("name", Text, nullable=False),
    Column("ino", BigInteger, nullable=False),
    Column("kind", String(1), nullable=False),
    Column("mode", Integer, nullable=False),
    Column("owner", String(255), nullable=False),
    Column("grp", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("ctime_ns", BigInteger, nullable=False),
    Column("atime_ns", BigInteger, nullable=False),
    Column("content_id", BigInteger, nullable=True),
    Column("target", Text, nullable=True),
    Column("aces", Text, nullable=True),
    Index("ix_mirror_stage_entries_volume_id_op", "volume_id", "op"),
)

mirror_stage_contents = Table(
    "mirror_stage_contents",
    metadata,
    Column("volume_id", Integer, primary_key=True),
    Column("source_id", BigInteger, primary_key=True),  # the source's id, translated
    Column("id", BigInteger, nullable=False),  # the id it gets here (differs after a collision)
    Column("size", BigInteger, nullable=False),
    Column("digest", LargeBinary(32), nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

mirror_stage_extents = Table(
    "mirror_stage_extents",
    metadata,
    Column("volume_id", Integer, primary_key=True),
    Column("content_id", BigInteger, primary_key=True),  # mirror_stage_contents.source_id
    Column("seq", Integer, primary_key=True),
    Column("file_offset", BigInteger, nullable=False),
    Column("length", BigInteger, nullable=False),
    Column("blob_id", LargeBinary(32), nullable=True),
    Column("blob_offset", BigInteger, nullable=False),
)

# -- De-identification runs (migration 0006): what was made, with which profile; the optional
#    re-identification map, encrypted, for an honest broker -----------------------------------------

deid_runs = Table(
    "deid_runs",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Column("principal", String(255), nullable=False),
    Column("source", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("profile", Text, nullable=False),  # JSON: name, options, table edition
    Column("instances", Integer, nullable=False),
    Column("stored", Integer, nullable=False),
    Column("quarantined", Integer, nullable=False),
    Column("reid_role", String(255), nullable=True),  # who may read the map (r:ROLE)
    Column("reid_key_id", String(255), nullable=True),
    Column("reid_wrapped_key", LargeBinary, nullable=True),
    Column("reid_map", LargeBinary, nullable=True),  # AES-256-GCM of the JSON map
)
