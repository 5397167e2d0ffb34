"""Job history: one ``job_runs`` row per run of a scheduled job (``tw jobs list``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('job_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job', sa.String(length=32), nullable=False),
    sa.Column('window_key', sa.String(length=120), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=True),
    sa.Column('business_date', sa.Date(), nullable=True),
    sa.Column('holder', sa.String(length=120), nullable=False),
    sa.Column('started_at', UTC, nullable=False),
    sa.Column('finished_at', UTC, nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('summary', sa.String(length=500), nullable=True),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.CheckConstraint("outcome IN ('running', 'succeeded', 'failed', 'file_missing', 'lease_lost')",
                       name=op.f('ck_job_runs_outcome')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_runs'))
    )
    op.create_index('ix_job_runs_job_window_key', 'job_runs', ['job', 'window_key'], unique=False)
    op.create_index('ix_job_runs_started_at', 'job_runs', ['started_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_job_runs_started_at', table_name='job_runs')
    op.drop_index('ix_job_runs_job_window_key', table_name='job_runs')
    op.drop_table('job_runs')
