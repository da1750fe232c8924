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
