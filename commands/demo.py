"""``tw demo``: the whole story in one command (a day at two providers, the nightly reconciliation, the files)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from commands._common import CliContext, emit, pass_cli
from commands.progress import progress_bar


@click.command()
@click.option("--sessions", default=150, show_default=True, type=click.IntRange(10, 5000),
              help="Sessions per provider over yesterday.")
@click.option("--players", default=40, show_default=True, type=click.IntRange(1, 10_000), help="Fresh players per provider.")
@click.option("--seed", default=7, show_default=True, type=int, help="Seed of every random choice.")
@click.option("--out", "out_dir", default="demo-out", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Folder for the CSV, XLSX and HTML files.")
@pass_cli
def demo(ctx: CliContext, sessions: int, players: int, seed: int, out_dir: Path) -> None:
    """Simulate yesterday at acme and betsul, reconcile it, and show the whole story.

    Starts two provider simulators on free loopback ports, funds players, runs
    seeded sessions with faults over yesterday in each provider's timezone, runs
    the sweeps, lets the providers make report mistakes, runs the nightly
    reconciliation and writes the files finance reads. Migrates the database
    first; runs again on the same file. Exits 0 when the story completed and
    the ledger check is clean (the discrepancies found are expected).

    \b
    Examples:
      tw --db sqlite:///transfer_wallet.db demo
      tw --json demo --sessions 40 --out /tmp/demo-out
    """
    from jobs.demo import DemoOptions, run_demo

    options = DemoOptions(sessions=sessions, players=players, seed=seed, out_dir=out_dir,
                          providers_file=ctx.providers_file)
    with progress_bar("demo") as progress:
        result = run_demo(ctx.database(create=True), options, progress=progress)
    document = result.as_dict()
    document["elapsed_s"] = document.pop("seconds")  # durations end in _s
    emit(ctx, document, text=lambda: render(document))
    if not result.ok:
        sys.exit(1)


def render(document: dict[str, Any]) -> str:
    """The story for people: money, sessions, ledger check, discrepancies, files."""
    lines = [f"demo run {document['run_id']} in {document['elapsed_s']} s"]
    for day in document["providers"]:
        states = ", ".join(f"{k} {v}" for k, v in day["sessions_by_state"].items())
        faults = ", ".join(f"{k} {v}" for k, v in day["faults_met"].items()) or "none"
        lines += [
            f"{day['provider']} {day['business_date']}: {day['sessions']} sessions ({states}), {day['rounds']} rounds, "
            f"{day['crossing_midnight']} crossing midnight"
            + (" (day compressed: too close to midnight for timeouts to run)" if day["compressed"] else ""),
            f"  money in {day['moved_in']} {day['currency']}, out {day['moved_out']} {day['currency']}",
            f"  in doubt during the day (resolved by the in-doubt job): {day['in_doubt_during_the_day']}; "
            f"outcomes other than ok: {faults}",
            "  report mistakes planted: " + ", ".join(p["mistake"] for p in day["planted"]),
            "  discrepancies: " + (", ".join(f"{k} {v}" for k, v in day["discrepancies_by_type"].items()) or "none"),
        ]
    lines += [f"money moved: " + "; ".join(f"{code} in {m['in']}, out {m['out']}"
                                           for code, m in document["money_moved"].items())]
    lines += [f"sweeps: {line}" for line in document["sweeps"]]
    ledger = document["ledger_check"]
    lines.append(f"ledger check: {'clean' if ledger['clean'] else 'FINDINGS'} ({ledger['entries']} entries)")
    lines += [f"  {finding}" for finding in ledger["findings"]]
    lines.append("files:")
    lines += [f"  {path}" for day in document["providers"] for path in day["files"]]
    return "\n".join(lines)
