"""Identifiers, references and keys are validated by a full match: a trailing newline is not a new id.

The attack: ``tw player create $'P1\\n'`` made a second player shown as ``P1`` and
``tw wallet deposit P1 5.00 --ref $'dep-1\\n'`` a second deposit instead of a replay,
because ``re.match`` with ``$`` accepts one trailing newline.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from cli import cli
from transfer_wallet.config import ConfigError, _parse_provider
from transfer_wallet.errors import ValidationError
from transfer_wallet.providers.protocol import check_identifier
from transfer_wallet.wallet import Wallet, validate_player_id, validate_reference

TRAILERS = ["\n", "\r\n", "\x00", " ", "\t"]


@pytest.mark.parametrize("trailer", TRAILERS, ids=repr)
def test_a_player_id_with_a_trailing_character_is_refused(trailer: str) -> None:
    with pytest.raises(ValidationError, match="invalid player id"):
        validate_player_id("P1" + trailer)


@pytest.mark.parametrize("trailer", TRAILERS, ids=repr)
def test_a_reference_with_a_trailing_character_is_refused(trailer: str) -> None:
    with pytest.raises(ValidationError, match="invalid reference"):
        validate_reference("dep-1" + trailer)


@pytest.mark.parametrize("trailer", TRAILERS, ids=repr)
def test_a_wire_identifier_with_a_trailing_character_is_refused(trailer: str) -> None:
    with pytest.raises(ValidationError, match="transfer id"):
        check_identifier("t-1" + trailer, "transfer id")


def test_the_longest_valid_identifiers_still_pass() -> None:
    assert validate_player_id("P" * 64) == "P" * 64
    assert validate_reference("r" * 128) == "r" * 128
    assert check_identifier("g" * 64, "game id") == "g" * 64
    with pytest.raises(ValidationError):
        check_identifier("g" * 65, "game id")


def test_a_provider_name_or_secret_variable_with_a_newline_is_a_config_error() -> None:
    raw = {"base_url": "http://127.0.0.1:1", "currency": "EUR", "keys": [{"key_id": "k", "secret_env": "TW_K"}]}
    assert _parse_provider("acme", raw).name == "acme"
    with pytest.raises(ConfigError, match="provider names"):
        _parse_provider("acme\n", raw)
    bad_env = {**raw, "keys": [{"key_id": "k", "secret_env": "TW_K\n"}]}
    with pytest.raises(ConfigError, match="secret_env"):
        _parse_provider("acme", bad_env)


def test_a_deposit_replayed_with_a_newline_after_the_reference_moves_no_money(db) -> None:
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "5.00", reference="dep-1")
    with pytest.raises(ValidationError, match="invalid reference"):
        wallet.deposit("P1", "5.00", reference="dep-1\n")
    assert wallet.balance("P1").available.format() == "5.00"


def test_tw_player_create_with_a_trailing_newline_makes_no_second_player(db) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    runner = CliRunner()
    assert runner.invoke(cli, ["--db", url, "player", "create", "P1", "--currency", "EUR"]).exit_code == 0
    result = runner.invoke(cli, ["--db", url, "player", "create", "P1\n", "--currency", "EUR"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: invalid player id 'P1\\n'")
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM players")).scalar_one() == 1
