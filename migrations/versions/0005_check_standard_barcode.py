"""check standard barcode

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 19:12:10.983935
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from app.core.append_only import protect, unprotect

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a plain ADD COLUMN on both engines: rebuilding the table would drop its append-only triggers
    op.add_column('instrument_check', sa.Column('standard_barcode', sqlmodel.sql.sqltypes.AutoString(length=20),
                                                server_default='', nullable=False))


def downgrade() -> None:
    unprotect(op.get_bind(), "instrument_check")
    with op.batch_alter_table('instrument_check', schema=None) as batch_op:
        batch_op.drop_column('standard_barcode')
    protect(op.get_bind(), "instrument_check")
