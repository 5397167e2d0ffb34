"""The numeric provider settings: counts are whole numbers, timeouts may be fractional, all positive."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from transfer_wallet.config import load_providers
from transfer_wallet.errors import ConfigError


def providers_file(tmp_path: Path, lines: str) -> Path:
    path = tmp_path / "providers.toml"
    path.write_text('[providers.acme]\nbase_url = "http://127.0.0.1:8701"\ncurrency = "EUR"\n' + lines, encoding="utf-8")
    return path


def test_numeric_settings_keep_their_written_values_and_stay_out_of_extra(tmp_path: Path) -> None:
    config = load_providers(providers_file(tmp_path, (
        "idle_timeout_s = 60\nmax_session_s = 600\nconnect_timeout_s = 1.5\nread_timeout_s = 3\n"
        "max_attempts = 2\nmax_retry_s = 0.25\nmax_open_sessions = 3\nstuck_after_attempts = 5\n"
    )))["acme"]

    assert (config.idle_timeout_s, config.max_session_s, config.max_attempts) == (60, 600, 2)
    assert (config.connect_timeout_s, config.read_timeout_s, config.max_retry_s) == (1.5, 3, 0.25)
    assert (config.max_open_sessions, config.stuck_after_attempts) == (3, 5)
    assert config.extra == {}


def test_unwritten_numeric_settings_take_the_defaults(tmp_path: Path) -> None:
    config = load_providers(providers_file(tmp_path, ""))["acme"]

    assert (config.connect_timeout_s, config.read_timeout_s, config.max_attempts, config.max_retry_s) == (2.0, 10.0, 4, 20.0)


@pytest.mark.parametrize(("line", "message"), [
    ("idle_timeout_s = 0", "providers.acme: 'idle_timeout_s' must be positive"),
    ("max_retry_s = -0.5", "providers.acme: 'max_retry_s' must be positive"),
    ("max_attempts = 2.5", "providers.acme: 'max_attempts' has the wrong type (float)"),
    ("max_open_sessions = true", "providers.acme: 'max_open_sessions' has the wrong type (bool)"),
    ('connect_timeout_s = "2"', "providers.acme: 'connect_timeout_s' has the wrong type (str)"),
])
def test_a_numeric_setting_that_is_not_a_positive_number_of_its_kind_is_refused(
    tmp_path: Path, line: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(": " + message) + "$"):
        load_providers(providers_file(tmp_path, line + "\n"))
