"""De-identification runs and their encrypted re-identification maps.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deid_runs",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("principal", sa.String(255), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("profile", sa.Text, nullable=False),
        sa.Column("instances", sa.Integer, nullable=False),
        sa.Column("stored", sa.Integer, nullable=False),
        sa.Column("quarantined", sa.Integer, nullable=False),
        sa.Column("reid_role", sa.String(255), nullable=True),
        sa.Column("reid_key_id", sa.String(255), nullable=True),
        sa.Column("reid_wrapped_key", sa.LargeBinary, nullable=True),
        sa.Column("reid_map", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_deid_runs"),
    )


def downgrade() -> None:
    op.drop_table("deid_runs")
