"""Discrepancies get a stable fingerprint, a source, reconciliation fields and an append-only history.

Existing rows are kept: each gets the fingerprint ``legacy:<id>``, source
``session``, ``last_seen_at`` = ``created_at`` and ``times_seen`` = 1. The status
check gains ``cleared`` (a reconciliation break that no longer appears).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 00:40:00
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)
OLD_STATUSES = "status IN ('open', 'investigating', 'resolved', 'written_off')"
NEW_STATUSES = "status IN ('open', 'investigating', 'resolved', 'written_off', 'cleared')"


def upgrade() -> None:
    with op.batch_alter_table('discrepancies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fingerprint', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('source', sa.String(length=16), nullable=False, server_default='session'))
        batch_op.add_column(sa.Column('business_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('run_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('provider_tx_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('difference_minor', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('fields', sa.String(length=4000), nullable=True))
        batch_op.add_column(sa.Column('times_seen', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('last_seen_at', UTC, nullable=True))
        batch_op.add_column(sa.Column('closed_at', UTC, nullable=True))
    op.execute("UPDATE discrepancies SET fingerprint = 'legacy:' || CAST(id AS VARCHAR(20)), last_seen_at = created_at")
    with op.batch_alter_table('discrepancies', schema=None) as batch_op:
        batch_op.alter_column('fingerprint', existing_type=sa.String(length=200), nullable=False)
        batch_op.alter_column('last_seen_at', existing_type=UTC, nullable=False)
        batch_op.alter_column('source', existing_type=sa.String(length=16), server_default=None)
        batch_op.alter_column('times_seen', existing_type=sa.Integer(), server_default=None)
        batch_op.drop_constraint(op.f('ck_discrepancies_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_discrepancies_status'), NEW_STATUSES)
        batch_op.create_check_constraint(op.f('ck_discrepancies_source'), "source IN ('session', 'reconcile')")
        batch_op.create_unique_constraint(op.f('uq_discrepancies_fingerprint'), ['fingerprint'])
        batch_op.create_index('ix_discrepancies_provider_business_date', ['provider', 'business_date'], unique=False)

    op.create_table('discrepancy_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('discrepancy_id', sa.Integer(), nullable=False),
    sa.Column('at', UTC, nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=True),
    sa.Column('note', sa.String(length=2000), nullable=True),
    sa.ForeignKeyConstraint(['discrepancy_id'], ['discrepancies.id'], name=op.f('fk_discrepancy_events_discrepancy_id_discrepancies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_discrepancy_events'))
    )
    op.create_index('ix_discrepancy_events_discrepancy_id', 'discrepancy_events', ['discrepancy_id', 'id'], unique=False)
    if op.get_bind().dialect.name == "postgresql":  # tw_append_only() comes with the initial migration
        op.execute("CREATE TRIGGER discrepancy_events_append_only BEFORE UPDATE OR DELETE ON discrepancy_events "
                   "FOR EACH ROW EXECUTE FUNCTION tw_append_only()")
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER discrepancy_events_no_{operation.lower()} BEFORE {operation} ON discrepancy_events "
                f"BEGIN SELECT RAISE(ABORT, 'discrepancy_events is append-only ({operation} refused)'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS discrepancy_events_append_only ON discrepancy_events")
    else:
        for operation in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS discrepancy_events_no_{operation}")
    op.drop_index('ix_discrepancy_events_discrepancy_id', table_name='discrepancy_events')
    op.drop_table('discrepancy_events')
    op.execute("DELETE FROM discrepancies WHERE status = 'cleared' OR source <> 'session'")
    with op.batch_alter_table('discrepancies', schema=None) as batch_op:
        batch_op.drop_index('ix_discrepancies_provider_business_date')
        batch_op.drop_constraint(op.f('uq_discrepancies_fingerprint'), type_='unique')
        batch_op.drop_constraint(op.f('ck_discrepancies_source'), type_='check')
        batch_op.drop_constraint(op.f('ck_discrepancies_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_discrepancies_status'), OLD_STATUSES)
        for column in ('closed_at', 'last_seen_at', 'times_seen', 'fields', 'difference_minor', 'provider_tx_id',
                       'run_id', 'business_date', 'source', 'fingerprint'):
            batch_op.drop_column(column)
