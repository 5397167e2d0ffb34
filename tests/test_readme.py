"""The README is copy-paste true: every ``$ tw ...`` it shows exists, and the operator's tour runs as printed.

Each ```console block's ``$ tw`` lines are resolved against the click command tree
of ``cli.cli`` (command path, then every option it names). The operator's tour is
then run for real on a fresh SQLite file against ``tw provider serve acme`` on a free
loopback port, and each command's output is compared with the README's after the
session id (random) and the times (the clock) are replaced by placeholders. The
Python example under the tour runs against the same simulator.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path
from typing import Iterator

import click
import pytest
from simulator_support import serving_acme
from click.testing import CliRunner

from cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TOUR_HEADING = "## An operator's session, from open to close"
SECRETS = {"TW_ACME_SECRET_2026_11": "readme-secret-11", "TW_ACME_SECRET_2026_09": "readme-secret-09"}
SESSION_ID = re.compile(r"\bs[0-9a-f]{20}\b")
INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z| UTC)?")


def console_blocks(text: str) -> list[list[tuple[str, list[str]]]]:
    """Each ```console block as (command line, output lines) pairs."""
    blocks = []
    for body in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        steps: list[tuple[str, list[str]]] = []
        for line in body.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
        blocks.append(steps)
    return blocks


def tw_arguments(command_line: str) -> list[str] | None:
    """The arguments after ``tw`` of a shell line (comment and a trailing ``&`` removed), else None."""
    words = shlex.split(command_line, comments=True)
    if not words or words[0] != "tw":
        return None
    return [w for w in words[1:] if w != "&"]


def resolve(arguments: list[str]) -> list[str]:
    """Walk ``arguments`` through the command tree; returns the command path. Fails on anything unknown."""
    command: click.Command = cli
    path = ["tw"]
    remaining = list(arguments)
    while remaining:
        word = remaining.pop(0)
        if word.startswith("-") and len(word) > 1:
            name = word.split("=", 1)[0]
            option = next((p for p in command.params if isinstance(p, click.Option) and name in p.opts + p.secondary_opts),
                          None)
            if name in ("-h", "--help"):
                continue
            assert option is not None, f"{' '.join(path)} has no option {name}"
            if not option.is_flag and "=" not in word:
                assert remaining, f"{' '.join(path)} {name} needs a value"
                remaining.pop(0)
        elif isinstance(command, click.Group):
            sub = command.get_command(click.Context(command), word)
            assert sub is not None, f"{' '.join(path)} has no command {word!r}"
            command, path = sub, [*path, word]
    return path


def all_tw_lines() -> list[str]:
    return [line for block in console_blocks(README) for line, _ in block if tw_arguments(line) is not None]


def test_the_readme_shows_tw_commands_in_console_blocks() -> None:
    assert len(all_tw_lines()) >= 10


@pytest.mark.parametrize("line", all_tw_lines())
def test_every_tw_command_in_the_readme_exists_with_the_options_it_shows(line: str) -> None:
    arguments = tw_arguments(line)
    assert arguments is not None
    assert len(resolve(arguments)) >= 2, f"{line!r} names no command"


def test_the_resolver_refuses_what_does_not_exist() -> None:
    with pytest.raises(AssertionError, match="no command 'walet'"):
        resolve(["walet", "balance", "P1"])
    with pytest.raises(AssertionError, match="no option --amout"):
        resolve(["session", "open", "P1", "--amout", "5"])


def tour() -> list[tuple[str, list[str]]]:
    section = README[README.index(TOUR_HEADING):]
    return console_blocks(section)[0]


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``tw provider serve acme`` on a free loopback port; yields a providers file pointing at it."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    with serving_acme(tmp_path, SECRETS, store="sim-acme.db") as providers:
        yield providers


def normalised(lines: list[str]) -> list[str]:
    """``lines`` with session ids, times and the migration revision replaced by placeholders."""
    out = []
    for line in lines:
        line = INSTANT.sub("TIME", SESSION_ID.sub("SESSION", line))
        out.append(re.sub(r"revision \d{4}", "revision NNNN", line.rstrip()))
    return out


def test_the_operator_tour_runs_as_printed(acme: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"TW_DATABASE_URL": f"sqlite:///{tmp_path / 'operator.db'}", "TW_PROVIDERS_FILE": str(acme)}
    steps = [(tw_arguments(line), printed) for line, printed in tour()]
    ran = 0
    ids: dict[str, str] = {}  # the README's session id -> this run's
    for arguments, printed in steps:
        if arguments is None or arguments[:2] == ["provider", "serve"]:
            continue  # shell set-up; the fixture runs the simulator
        arguments = [ids.get(word, word) for word in arguments]
        result = CliRunner().invoke(cli, arguments, env=env, catch_exceptions=False, prog_name="tw")
        shown, real = SESSION_ID.search("\n".join(printed)), SESSION_ID.search(result.stdout)
        if shown and real:
            ids.setdefault(shown.group(0), real.group(0))
        assert result.exit_code == 0, (arguments, result.output)
        assert normalised(result.stdout.splitlines()) == normalised(printed), arguments
        ran += 1
    assert ran >= 10

    python = re.search(r"```python\n(.*?open_runtime.*?)```", README[README.index(TOUR_HEADING):], flags=re.S)
    assert python is not None
    code = python.group(1).replace("sample_data/providers.toml", str(acme))
    expected = re.search(r"print\(.*\)\s+# (.*)", code)
    assert expected is not None
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the README's own example
    assert printed.getvalue().strip() == expected.group(1).strip()
