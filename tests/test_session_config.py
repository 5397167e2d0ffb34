"""Session rules from the providers file: typed, validated, with one set of defaults."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from transfer_wallet.config import (
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_SESSION_S,
    ProviderConfig,
    load_providers,
)
from transfer_wallet.errors import ConfigError, OutcomeUnknownError
from transfer_wallet.money import Money
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.sessions import SessionManager, SessionPolicy, policies_from_config
from transfer_wallet.wallet import Wallet

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "providers.toml"


def providers_file(tmp_path: Path, lines: str) -> Path:
    path = tmp_path / "providers.toml"
    path.write_text('[providers.acme]\nbase_url = "http://127.0.0.1:8701"\ncurrency = "EUR"\n' + lines, encoding="utf-8")
    return path


def test_session_rules_default_to_one_open_session_eight_close_attempts_and_a_tenfold_review(tmp_path):
    config = load_providers(providers_file(tmp_path, ""))["acme"]
    assert (config.max_open_sessions, config.stuck_after_attempts) == (1, 8)
    assert (config.idle_timeout_s, config.max_session_s) == (900, 14_400)
    assert config.review_out_multiple == Decimal(10) and config.review_out_amount == {}
    assert config.extra == {}
    policy = SessionPolicy.from_config(config)
    assert policy == SessionPolicy("EUR", review_out_amounts={})
    assert (policy.idle_timeout_s, policy.max_session_s) == (DEFAULT_IDLE_TIMEOUT_S, DEFAULT_MAX_SESSION_S)


def test_session_rules_are_real_typed_fields_not_extras(tmp_path):
    path = providers_file(tmp_path, (
        "max_open_sessions = 3\nstuck_after_attempts = 5\nreview_out_multiple = 2.5\n"
        'review_out_amount = { EUR = "5000.00", jpy = "900000" }\n'
    ))
    config = load_providers(path)["acme"]
    assert (config.max_open_sessions, config.stuck_after_attempts, config.extra) == (3, 5, {})
    assert config.review_out_multiple == Decimal("2.5")
    assert config.review_out_amount == {"EUR": Money.parse("5000.00", "EUR"), "JPY": Money.parse("900000", "JPY")}
    policy = policies_from_config({"acme": config})["acme"]
    assert (policy.max_open_sessions, policy.stuck_after_attempts) == (3, 5)
    assert policy.review_out_amounts == {"EUR": 500_000, "JPY": 900_000}


def test_a_review_multiple_of_zero_turns_the_multiple_check_off(tmp_path):
    config = load_providers(providers_file(tmp_path, "review_out_multiple = 0\n"))["acme"]
    assert config.review_out_multiple is None


@pytest.mark.parametrize(("lines", "message"), [
    ("max_open_sessions = 0\n", "'max_open_sessions' must be positive"),
    ('max_open_sessions = "2"\n', "'max_open_sessions' has the wrong type (str)"),
    ("stuck_after_attempts = -1\n", "'stuck_after_attempts' must be positive"),
    ("stuck_after_attempts = true\n", "'stuck_after_attempts' has the wrong type (bool)"),
    ("review_out_multiple = -1\n", "'review_out_multiple' must be a number >= 0, got -1"),
    ('review_out_multiple = "ten"\n', "'review_out_multiple' must be a number, got 'ten'"),
    ('review_out_multiple = "nan"\n', "'review_out_multiple' must be a number >= 0, got 'nan'"),
    ("review_out_amount = { EUR = 5000 }\n", "'EUR' must be an amount in quotes"),
    ('review_out_amount = { EUR = "50.001" }\n', "review_out_amount"),
    ('review_out_amount = { XXQ = "50.00" }\n', "review_out_amount"),
    ('review_out_amount = "50.00"\n', "'review_out_amount' has the wrong type (str)"),
])
def test_bad_session_rules_are_refused_naming_the_key(tmp_path, lines, message):
    with pytest.raises(ConfigError, match="providers.acme") as caught:
        load_providers(providers_file(tmp_path, lines))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_sample_providers_file_keeps_the_defaults():
    for config in load_providers(SAMPLE).values():
        assert (config.max_open_sessions, config.stuck_after_attempts) == (1, 8)
        assert "max_open_sessions" not in config.extra and "stuck_after_attempts" not in config.extra


def test_a_provider_config_built_in_code_has_the_same_defaults_as_the_policy():
    config = ProviderConfig("acme", "http://127.0.0.1:1", "EUR", (), None)  # type: ignore[arg-type]
    assert SessionPolicy.from_config(config) == SessionPolicy("EUR", review_out_amounts={})


def test_the_session_list_pages_past_its_cap_with_an_offset(db):
    wallet = Wallet(db)
    acme = InMemoryProvider(name="acme", clock=lambda: T0)
    manager = SessionManager(db, {"acme": acme}, {"acme": SessionPolicy("EUR")}, clock=lambda: T0)
    for index in range(5):
        wallet.create_player(f"P{index}", "EUR")
        wallet.deposit(f"P{index}", "10.00", reference=f"dep-{index}")
        manager.open_session(f"P{index}", "acme", "1.00", now=T0 + dt.timedelta(minutes=index))
    everything = [s.player_id for s in manager.list(limit=100)]
    assert everything == ["P4", "P3", "P2", "P1", "P0"]  # newest first
    pages = [[s.player_id for s in manager.list(limit=2, offset=offset)] for offset in (0, 2, 4, 6)]
    assert pages == [["P4", "P3"], ["P2", "P1"], ["P0"], []]
    assert [s.player_id for s in manager.list(limit=2, offset=-5)] == ["P4", "P3"]  # a negative offset is 0


def test_the_session_list_filters_by_status_provider_and_doubt(db):
    wallet = Wallet(db)
    acme = InMemoryProvider(name="acme", clock=lambda: T0)
    other = InMemoryProvider(name="other", clock=lambda: T0)
    policies = {"acme": SessionPolicy("EUR"), "other": SessionPolicy("EUR")}
    manager = SessionManager(db, {"acme": acme, "other": other}, policies, clock=lambda: T0)
    for player in ("P1", "P2", "P3"):
        wallet.create_player(player, "EUR")
        wallet.deposit(player, "10.00", reference=f"dep-{player}")
    active = manager.open_session("P1", "acme", "1.00", now=T0)
    closed = manager.close_session(manager.open_session("P2", "acme", "1.00", now=T0).id, now=T0)
    other.fail_next(OutcomeUnknownError("lost"))
    doubtful = manager.open_session("P3", "other", "1.00", now=T0)

    assert [s.id for s in manager.list(status="active")] == [active.id]
    assert [s.id for s in manager.list(status="closed")] == [closed.id]
    assert [s.id for s in manager.list(provider="other")] == [doubtful.id]
    assert [s.id for s in manager.list(in_doubt=True)] == [doubtful.id]
    assert [s.id for s in manager.list(player_id="P2", stuck=False)] == [closed.id]
