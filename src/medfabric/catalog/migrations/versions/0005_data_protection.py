"""Data protection: schedules and their jobs, remote fabrics, mirrors and a sync's staged rows.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _entry_columns() -> list[sa.Column[object]]:
    return [
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
        sa.Column("aces", sa.Text, nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "remotes",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("fabric_id", sa.String(64), nullable=False),
        sa.Column("fabric_name", sa.String(255), nullable=False),
        sa.Column("added_at", sa.BigInteger, nullable=False),
        sa.Column("added_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_remotes"),
    )
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("rules", sa.Text, nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("modified_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schedules"),
        sa.UniqueConstraint("name", name="uq_schedules_name"),
    )
    op.create_table(
        "schedule_jobs",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("schedule_id", sa.Integer, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("volume_id", sa.Integer, nullable=True),
        sa.Column("volume_created_at", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schedule_jobs"),
    )
    op.create_index(
        "uq_schedule_jobs_action_volume_id", "schedule_jobs", ["action", "volume_id"], unique=True
    )
    op.create_index("ix_schedule_jobs_schedule_id", "schedule_jobs", ["schedule_id"])
    op.create_table(
        "schedule_runs",
        sa.Column("job_id", sa.Integer, nullable=False),
        sa.Column("rule", sa.Integer, nullable=False),
        sa.Column("last_run_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "rule", name="pk_schedule_runs"),
    )
    op.create_table(
        "schedule_snapshots",
        sa.Column("job_id", sa.Integer, nullable=False),
        sa.Column("rule", sa.Integer, nullable=False),
        sa.Column("snapshot_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "rule", "snapshot_id", name="pk_schedule_snapshots"),
    )
    op.create_table(
        "mirrors",
        sa.Column("volume_id", sa.Integer, nullable=False),
        sa.Column("volume_created_at", sa.BigInteger, nullable=False),
        sa.Column("source_location", sa.Text, nullable=True),
        sa.Column("source_remote", sa.String(255), nullable=True),
        sa.Column("source_fabric_id", sa.String(64), nullable=False),
        sa.Column("source_fabric_name", sa.String(255), nullable=False),
        sa.Column("source_volume", sa.String(255), nullable=False),
        sa.Column("source_volume_id", sa.Integer, nullable=False),
        sa.Column("blob_scheme", sa.String(80), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("stop_requested", sa.Boolean, nullable=False),
        sa.Column("synced_snapshot", sa.String(255), nullable=True),
        sa.Column("synced_version", sa.BigInteger, nullable=True),
        sa.Column("synced_at", sa.BigInteger, nullable=True),
        sa.Column("stale_snapshot", sa.String(255), nullable=True),
        sa.Column("pending_snapshot", sa.String(255), nullable=True),
        sa.Column("pending_version", sa.BigInteger, nullable=True),
        sa.Column("pending_full", sa.Boolean, nullable=False),
        sa.Column("staged_through", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=True),
        sa.Column("last_duration_ms", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("blobs_sent", sa.BigInteger, nullable=False),
        sa.Column("bytes_sent", sa.BigInteger, nullable=False),
        sa.Column("rows_staged", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("volume_id", name="pk_mirrors"),
    )
    op.create_table(
        "mirror_stage_entries",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("volume_id", sa.Integer, nullable=False),
        sa.Column("op", sa.String(4), nullable=False),
        *_entry_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_mirror_stage_entries"),
    )
    op.create_index("ix_mirror_stage_entries_volume_id_op", "mirror_stage_entries", ["volume_id", "op"])
    op.create_table(
        "mirror_stage_contents",
        sa.Column("volume_id", sa.Integer, nullable=False),
        sa.Column("source_id", sa.BigInteger, nullable=False),
        sa.Column("id", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("volume_id", "source_id", name="pk_mirror_stage_contents"),
    )
    op.create_table(
        "mirror_stage_extents",
        sa.Column("volume_id", sa.Integer, nullable=False),
        sa.Column("content_id", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("file_offset", sa.BigInteger, nullable=False),
        sa.Column("length", sa.BigInteger, nullable=False),
        sa.Column("blob_id", sa.LargeBinary(32), nullable=True),
        sa.Column("blob_offset", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("volume_id", "content_id", "seq", name="pk_mirror_stage_extents"),
    )


def downgrade() -> None:
    for name in (
        "mirror_stage_extents",
        "mirror_stage_contents",
        "mirror_stage_entries",
        "mirrors",
        "schedule_snapshots",
        "schedule_runs",
        "schedule_jobs",
        "schedules",
        "remotes",
    ):
        op.drop_table(name)
