"""The imaging index: patients, studies, series and instances with their hot DICOM attributes.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "dicom_patients",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("issuer", sa.String(64), nullable=False),
        sa.Column("patient_name", sa.Text, nullable=True),
        sa.Column("birth_date", sa.String(8), nullable=True),
        sa.Column("sex", sa.String(16), nullable=True),
        sa.Column("study_count", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dicom_patients"),
    )
    op.create_index(
        "uq_dicom_patients_patient_id_issuer", "dicom_patients", ["patient_id", "issuer"], unique=True
    )
    op.create_table(
        "dicom_studies",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("patient_pk", sa.BigInteger, nullable=False),
        sa.Column("study_date", sa.String(8), nullable=True),
        sa.Column("study_time", sa.String(16), nullable=True),
        sa.Column("accession_number", sa.String(64), nullable=True),
        sa.Column("study_description", sa.Text, nullable=True),
        sa.Column("referring_physician_name", sa.Text, nullable=True),
        sa.Column("modalities", sa.Text, nullable=False),
        sa.Column("series_count", sa.Integer, nullable=False),
        sa.Column("instance_count", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dicom_studies"),
        sa.UniqueConstraint("study_uid", name="uq_dicom_studies_study_uid"),
    )
    op.create_index("ix_dicom_studies_patient_pk", "dicom_studies", ["patient_pk"])
    op.create_index("ix_dicom_studies_study_date", "dicom_studies", ["study_date"])
    op.create_table(
        "dicom_series",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("series_uid", sa.String(64), nullable=False),
        sa.Column("study_pk", sa.BigInteger, nullable=False),
        sa.Column("modality", sa.String(16), nullable=True),
        sa.Column("series_number", sa.Integer, nullable=True),
        sa.Column("series_description", sa.Text, nullable=True),
        sa.Column("body_part_examined", sa.String(64), nullable=True),
        sa.Column("instance_count", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dicom_series"),
        sa.UniqueConstraint("series_uid", name="uq_dicom_series_series_uid"),
    )
    op.create_index("ix_dicom_series_study_pk", "dicom_series", ["study_pk"])
    op.create_index("ix_dicom_series_modality", "dicom_series", ["modality"])
    op.create_table(
        "dicom_instances",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("sop_uid", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("latest", sa.Boolean, nullable=False),
        sa.Column("series_pk", sa.BigInteger, nullable=False),
        sa.Column("sop_class_uid", sa.String(64), nullable=False),
        sa.Column("instance_number", sa.Integer, nullable=True),
        sa.Column("transfer_syntax", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("volume_id", sa.Integer, nullable=False),
        sa.Column("ino", sa.BigInteger, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("ingested_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dicom_instances"),
    )
    op.create_index(
        "uq_dicom_instances_sop_uid_version", "dicom_instances", ["sop_uid", "version"], unique=True
    )
    op.create_index("ix_dicom_instances_series_pk", "dicom_instances", ["series_pk"])
    op.create_index("ix_dicom_instances_volume_id_ino", "dicom_instances", ["volume_id", "ino"])


def downgrade() -> None:
    for name in ("dicom_instances", "dicom_series", "dicom_studies", "dicom_patients"):
        op.drop_table(name)
