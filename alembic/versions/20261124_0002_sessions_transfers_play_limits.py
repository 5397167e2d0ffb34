"""Sessions, provider transfers, mirrored play, rounds, discrepancies, player limits and job leases.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 11:25:19.899799
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa

from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('job_leases',
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('holder', sa.String(length=120), nullable=False),
    sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_leases'))
    )
    op.create_table('game_sessions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('player_id', sa.String(length=64), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('wallet_currency', sa.String(length=3), nullable=False),
    sa.Column('game_currency', sa.String(length=3), nullable=False),
    sa.Column('amount_in_minor', sa.BigInteger(), nullable=False),
    sa.Column('game_amount_in_minor', sa.BigInteger(), nullable=False),
    sa.Column('game_balance_minor', sa.BigInteger(), nullable=False),
    sa.Column('mirrored', sa.Boolean(), nullable=False),
    sa.Column('game_amount_out_minor', sa.BigInteger(), nullable=True),
    sa.Column('amount_out_minor', sa.BigInteger(), nullable=True),
    sa.Column('open_key', sa.String(length=200), nullable=False),
    sa.Column('open_request_hash', sa.String(length=64), nullable=False),
    sa.Column('close_key', sa.String(length=200), nullable=True),
    sa.Column('close_reason', sa.String(length=32), nullable=True),
    sa.Column('failure_reason', sa.String(length=500), nullable=True),
    sa.Column('idle_timeout_s', sa.Integer(), nullable=False),
    sa.Column('max_session_s', sa.Integer(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_activity_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closing_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('close_attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('stuck', sa.Boolean(), nullable=False),
    sa.CheckConstraint("status IN ('opening', 'active', 'closing', 'closed', 'failed')", name=op.f('ck_game_sessions_status')),
    sa.CheckConstraint('amount_in_minor > 0', name=op.f('ck_game_sessions_amount_in_positive')),
    sa.CheckConstraint('game_balance_minor >= 0', name=op.f('ck_game_sessions_game_balance_floor')),
    sa.ForeignKeyConstraint(['player_id'], ['players.id'], name=op.f('fk_game_sessions_player_id_players')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_game_sessions')),
    sa.UniqueConstraint('close_key', name=op.f('uq_game_sessions_close_key')),
    sa.UniqueConstraint('open_key', name=op.f('uq_game_sessions_open_key'))
    )
    with op.batch_alter_table('game_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_game_sessions_player_provider_status', ['player_id', 'provider', 'status'], unique=False)
        batch_op.create_index('ix_game_sessions_status_next_attempt', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_game_sessions_status_deadline', ['status', 'deadline_at'], unique=False)

    op.create_table('player_limits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('player_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=True),
    sa.Column('until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('effective_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('transfer_in_day', 'transfer_in_week', 'transfer_in_month', 'loss_day', 'loss_week', 'loss_month', 'session_length', 'self_exclusion')", name=op.f('ck_player_limits_kind')),
    sa.CheckConstraint('value IS NULL OR value >= 0', name=op.f('ck_player_limits_value_nonnegative')),
    sa.ForeignKeyConstraint(['player_id'], ['players.id'], name=op.f('fk_player_limits_player_id_players')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_player_limits'))
    )
    with op.batch_alter_table('player_limits', schema=None) as batch_op:
        batch_op.create_index('ix_player_limits_player_kind_effective', ['player_id', 'kind', 'effective_from'], unique=False)

    op.create_table('discrepancies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=True),
    sa.Column('session_id', sa.String(length=40), nullable=True),
    sa.Column('transfer_id', sa.String(length=64), nullable=True),
    sa.Column('player_id', sa.String(length=64), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('expected_minor', sa.BigInteger(), nullable=True),
    sa.Column('actual_minor', sa.BigInteger(), nullable=True),
    sa.Column('detail', sa.String(length=1000), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('note', sa.String(length=2000), nullable=True),
    sa.Column('changed_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('open', 'investigating', 'resolved', 'written_off')", name=op.f('ck_discrepancies_status')),
    sa.ForeignKeyConstraint(['session_id'], ['game_sessions.id'], name=op.f('fk_discrepancies_session_id_game_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_discrepancies'))
    )
    with op.batch_alter_table('discrepancies', schema=None) as batch_op:
        batch_op.create_index('ix_discrepancies_kind_status', ['kind', 'status'], unique=False)

    op.create_table('game_rounds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.String(length=40), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('round_id', sa.String(length=64), nullable=False),
    sa.Column('game_id', sa.String(length=64), nullable=True),
    sa.Column('bet_minor', sa.BigInteger(), nullable=False),
    sa.Column('win_minor', sa.BigInteger(), nullable=False),
    sa.Column('refund_minor', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['game_sessions.id'], name=op.f('fk_game_rounds_session_id_game_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_game_rounds')),
    sa.UniqueConstraint('provider', 'round_id', name='uq_game_rounds_provider_round')
    )
    with op.batch_alter_table('game_rounds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_game_rounds_session_id'), ['session_id'], unique=False)

    op.create_table('play_transactions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.String(length=40), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('provider_tx_id', sa.String(length=64), nullable=False),
    sa.Column('round_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('refund_of', sa.String(length=64), nullable=True),
    sa.Column('tombstone', sa.Boolean(), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('balance_after_minor', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('bet', 'win', 'refund')", name=op.f('ck_play_transactions_kind')),
    sa.CheckConstraint('amount_minor >= 0', name=op.f('ck_play_transactions_amount_nonnegative')),
    sa.ForeignKeyConstraint(['session_id'], ['game_sessions.id'], name=op.f('fk_play_transactions_session_id_game_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_play_transactions')),
    sa.UniqueConstraint('provider', 'provider_tx_id', name='uq_play_transactions_provider_tx')
    )
    with op.batch_alter_table('play_transactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_play_transactions_session_id'), ['session_id'], unique=False)

    op.create_table('transfers',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('session_id', sa.String(length=40), nullable=False),
    sa.Column('player_id', sa.String(length=64), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('direction', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('wallet_currency', sa.String(length=3), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=True),
    sa.Column('game_currency', sa.String(length=3), nullable=False),
    sa.Column('game_amount_minor', sa.BigInteger(), nullable=True),
    sa.Column('fx_rate', sa.String(length=40), nullable=True),
    sa.Column('fx_residue_minor', sa.BigInteger(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('provider_tx_id', sa.String(length=64), nullable=True),
    sa.Column('entry_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("direction IN ('IN', 'OUT')", name=op.f('ck_transfers_direction')),
    sa.CheckConstraint("status IN ('pending', 'in_doubt', 'completed', 'refused', 'void')", name=op.f('ck_transfers_status')),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_transfers_entry_id_entries')),
    sa.ForeignKeyConstraint(['session_id'], ['game_sessions.id'], name=op.f('fk_transfers_session_id_game_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfers'))
    )
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfers_session_id'), ['session_id'], unique=False)
        batch_op.create_index('ix_transfers_status_next_attempt', ['status', 'next_attempt_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.drop_index('ix_transfers_status_next_attempt')
        batch_op.drop_index(batch_op.f('ix_transfers_session_id'))

    op.drop_table('transfers')
    with op.batch_alter_table('play_transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_play_transactions_session_id'))

    op.drop_table('play_transactions')
    with op.batch_alter_table('game_rounds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_game_rounds_session_id'))

    op.drop_table('game_rounds')
    with op.batch_alter_table('discrepancies', schema=None) as batch_op:
        batch_op.drop_index('ix_discrepancies_kind_status')

    op.drop_table('discrepancies')
    with op.batch_alter_table('player_limits', schema=None) as batch_op:
        batch_op.drop_index('ix_player_limits_player_kind_effective')

    op.drop_table('player_limits')
    with op.batch_alter_table('game_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_game_sessions_status_next_attempt')
        batch_op.drop_index('ix_game_sessions_status_deadline')
        batch_op.drop_index('ix_game_sessions_player_provider_status')

    op.drop_table('game_sessions')
    op.drop_table('job_leases')
