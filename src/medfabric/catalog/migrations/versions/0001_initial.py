"""The initial catalog: volumes, the versioned namespace, contents, the blob index, operations.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LIVE = sa.text("died IS NULL")
MOUNTED = sa.text("mounted")
ACTIVE = sa.text("cleared_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_meta"),
    )
    op.create_table(
        "config_values",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("modified_at", sa.BigInteger, nullable=False),
        sa.Column("modified_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_config_values"),
    )
    op.create_table(
        "volumes",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("mount_path", sa.Text, nullable=True),
        sa.Column("mounted", sa.Boolean, nullable=False),
        sa.Column("parent_id", sa.Integer, nullable=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("root_ino", sa.BigInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("next_ino", sa.BigInteger, nullable=False),
        sa.Column("replication", sa.SmallInteger, nullable=False),
        sa.Column("min_replication", sa.SmallInteger, nullable=False),
        sa.Column("quota", sa.BigInteger, nullable=False),
        sa.Column("advisory_quota", sa.BigInteger, nullable=False),
        sa.Column("readonly", sa.Boolean, nullable=False),
        sa.Column("compression", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("modified_at", sa.BigInteger, nullable=False),
        sa.Column("logical_bytes", sa.BigInteger, nullable=False),
        sa.Column("file_count", sa.BigInteger, nullable=False),
        sa.Column("dir_count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_volumes"),
        sa.UniqueConstraint("name", name="uq_volumes_name"),
        sa.ForeignKeyConstraint(["parent_id"], ["volumes.id"], name="fk_volumes_parent_id_volumes"),
    )
    op.create_index(
        "uq_volumes_mount_path",
        "volumes",
        ["mount_path"],
        unique=True,
        sqlite_where=MOUNTED,
        postgresql_where=MOUNTED,
    )
    op.create_table(
        "entries",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("volume_id", sa.Integer, nullable=False),
        sa.Column("parent_ino", sa.BigInteger, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("ino", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(1), nullable=False),
        sa.Column("mode", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("grp", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("ctime_ns", sa.BigInteger, nullable=False),
        sa.Column("atime_ns", sa.BigInteger, nullable=False),
        sa.Column("content_id", sa.BigInteger, nullable=True),
        sa.Column("target", sa.Text, nullable=True),
        sa.Column("born", sa.BigInteger, nullable=False),
        sa.Column("died", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_entries"),
    )
    op.create_index(
        "uq_entries_live_name",
        "entries",
        ["volume_id", "parent_ino", "name"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_index(
        "ix_entries_live_ino", "entries", ["volume_id", "ino"], sqlite_where=LIVE, postgresql_where=LIVE
    )
    op.create_index("ix_entries_history", "entries", ["volume_id", "parent_ino", "name", "born"])
    op.create_table(
        "contents",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("volume_id", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_contents"),
    )
    op.create_table(
        "extents",
        sa.Column("content_id", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("file_offset", sa.BigInteger, nullable=False),
        sa.Column("length", sa.BigInteger, nullable=False),
        sa.Column("blob_id", sa.LargeBinary(32), nullable=True),
        sa.Column("blob_offset", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("content_id", "seq", name="pk_extents"),
    )
    op.create_index("ix_extents_blob_id", "extents", ["blob_id"])
    op.create_table(
        "packs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("volume_id", sa.Integer, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("replicas", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("blob_count", sa.Integer, nullable=False),
        sa.Column("writer", sa.String(255), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("sealed_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_packs"),
    )
    op.create_index("ix_packs_volume_id_state", "packs", ["volume_id", "state"])
    op.create_table(
        "blobs",
        sa.Column("volume_id", sa.Integer, nullable=False),
        sa.Column("blob_id", sa.LargeBinary(32), nullable=False),
        sa.Column("pack_id", sa.String(32), nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("stored_length", sa.BigInteger, nullable=False),
        sa.Column("length", sa.BigInteger, nullable=False),
        sa.Column("codec", sa.SmallInteger, nullable=False),
        sa.Column("orphaned_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("volume_id", "blob_id", name="pk_blobs"),
    )
    op.create_index("ix_blobs_pack_id", "blobs", ["pack_id"])
    op.create_table(
        "locations",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_locations"),
        sa.UniqueConstraint("uri", name="uq_locations_uri"),
    )
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("volume_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=True),
        sa.Column("preserved", sa.Boolean, nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_snapshots"),
        sa.ForeignKeyConstraint(["volume_id"], ["volumes.id"], name="fk_snapshots_volume_id_volumes"),
    )
    op.create_index("uq_snapshots_volume_id_name", "snapshots", ["volume_id", "name"], unique=True)
    op.create_table(
        "alarms",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("entity", sa.String(255), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("raised_at", sa.BigInteger, nullable=False),
        sa.Column("cleared_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alarms"),
    )
    op.create_index(
        "uq_alarms_active",
        "alarms",
        ["name", "entity"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    op.create_table(
        "nodes",
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("services", sa.Text, nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("last_seen", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("hostname", name="pk_nodes"),
    )


def downgrade() -> None:
    for table in (
        "nodes",
        "alarms",
        "snapshots",
        "locations",
        "blobs",
        "packs",
        "extents",
        "contents",
        "entries",
        "volumes",
        "config_values",
        "meta",
    ):
        op.drop_table(table)
