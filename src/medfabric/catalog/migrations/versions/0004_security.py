"""Security and governance: principals, ACLs and ACEs, keys, the audit trail, lineage.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_users"),
    )
    op.create_table(
        "groups",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),  # group | role
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", "kind", name="pk_groups"),
    )
    op.create_table(
        "memberships",
        sa.Column("user_name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("group_name", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("user_name", "kind", "group_name", name="pk_memberships"),
    )
    op.create_table(
        "tokens",
        sa.Column("token_id", sa.String(64), nullable=False),
        sa.Column("user_name", sa.String(255), nullable=False),
        sa.Column("token_hash", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("token_id", name="pk_tokens"),
    )
    with op.batch_alter_table("volumes") as batch:
        batch.add_column(sa.Column("acl", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("read_ace", sa.Text, nullable=True))
        batch.add_column(sa.Column("write_ace", sa.Text, nullable=True))
        batch.add_column(sa.Column("audited", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("audit_ops", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("encryption", sa.String(16), nullable=False, server_default="off"))
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("aces", sa.Text, nullable=True))
    op.create_table(
        "volume_keys",
        sa.Column("volume_id", sa.Integer, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("kms_key_id", sa.String(255), nullable=False),
        sa.Column("wrapped_data_key", sa.LargeBinary, nullable=False),
        sa.Column("wrapped_id_key", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("volume_id", "generation", name="pk_volume_keys"),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("time_us", sa.BigInteger, nullable=False),
        sa.Column("principal", sa.String(255), nullable=False),
        sa.Column("interface", sa.String(16), nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("volume", sa.String(255), nullable=True),
        sa.Column("path", sa.Text, nullable=True),
        sa.Column("patient_id", sa.Text, nullable=True),
        sa.Column("record", sa.LargeBinary, nullable=False),  # the canonical bytes the chain hashes
        sa.Column("chain_hash", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_time_us", "audit_log", ["time_us"])
    op.create_table(
        "lineage",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("output_ino", sa.BigInteger, nullable=True),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("transform", sa.String(255), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("principal", sa.String(255), nullable=False),
        sa.Column("recorded_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lineage"),
    )
    op.create_index("ix_lineage_output", "lineage", ["output"])
    op.create_index("ix_lineage_output_ino", "lineage", ["output_ino"])
    op.create_index("ix_lineage_input", "lineage", ["input"])


def downgrade() -> None:
    for table in ("lineage", "audit_log", "volume_keys", "tokens", "memberships", "groups", "users"):
        op.drop_table(table)
    with op.batch_alter_table("entries") as batch:
        batch.drop_column("aces")
    with op.batch_alter_table("volumes") as batch:
        for column in ("encryption", "audit_ops", "audited", "write_ace", "read_ace", "acl"):
            batch.drop_column(column)
