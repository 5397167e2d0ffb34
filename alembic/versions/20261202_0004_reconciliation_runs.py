"""Reconciliation runs, and the index the ledger side of a reconciliation reads through.

``reconciliation_runs``: one row per reconciliation of a provider's report for a
business date (file name, size, SHA-256, profile, counts, timings, outcome).
``ix_transfers_provider_created_at``: the provider's transfers of a business day
(plus the cut-off margins) in one range scan.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 02:00:00
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('reconciliation_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('file_size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('profile_digest', sa.String(length=64), nullable=False),
    sa.Column('profile', sa.Text(), nullable=False),
    sa.Column('counts', sa.Text(), nullable=False),
    sa.Column('timings', sa.Text(), nullable=False),
    sa.Column('across_cutoff', sa.Text(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.Column('open_count', sa.Integer(), nullable=False),
    sa.Column('started_at', UTC, nullable=False),
    sa.Column('finished_at', UTC, nullable=False),
    sa.CheckConstraint("outcome IN ('succeeded', 'failed')", name=op.f('ck_reconciliation_runs_outcome')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_runs'))
    )
    op.create_index('ix_reconciliation_runs_provider_business_date', 'reconciliation_runs',
                    ['provider', 'business_date'], unique=False)
    op.create_index('ix_reconciliation_runs_file_sha256', 'reconciliation_runs', ['file_sha256'], unique=False)
    op.create_index('ix_transfers_provider_created_at', 'transfers', ['provider', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_transfers_provider_created_at', table_name='transfers')
    op.drop_index('ix_reconciliation_runs_file_sha256', table_name='reconciliation_runs')
    op.drop_index('ix_reconciliation_runs_provider_business_date', table_name='reconciliation_runs')
    op.drop_table('reconciliation_runs')
