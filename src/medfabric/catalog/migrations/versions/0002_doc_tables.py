"""JSON tables: the registry mapping a namespace entry to its SQL document table.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "doc_tables",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("volume_id", sa.Integer, nullable=False),
        sa.Column("ino", sa.BigInteger, nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_doc_tables"),
    )
    op.create_index("uq_doc_tables_volume_id_ino", "doc_tables", ["volume_id", "ino"], unique=True)


def downgrade() -> None:
    op.drop_table("doc_tables")
