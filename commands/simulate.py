"""``tw simulate``: seeded sessions against a provider simulator, with faults."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from commands._common import OUTPUT_FILE, STDOUT, CliContext, emit, fail, pass_cli, write_file
from commands.progress import progress_bar


@click.command()
@click.option("--provider", "provider_name", required=True, help="Provider from the providers file.")
@click.option("--players", default=10, show_default=True, type=int, help="Fresh players to fund.")
@click.option("--sessions", default=50, show_default=True, type=int, help="Sessions to run.")
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of every random choice.")
@click.option("--faults", "faults", multiple=True,
              help="Fault rule(s) ENDPOINT:KIND=PROBABILITY[:PARAM], repeatable or comma-separated, e.g. transfer:500=0.2.")
@click.option("--timeout-share", default=0.1, show_default=True, type=float, help="Share of sessions left to time out.")
@click.option("--rounds", "rounds", default=10, show_default=True, type=int, help="Rounds played per session.")
@click.option("--funding", default="500.00", show_default=True, help="Deposit per player (major units).")
@click.option("--url", help="Use a simulator already running (tw provider serve) instead of starting one.")
@click.option("--report-out", type=OUTPUT_FILE, help="Write the provider's transfer report of the day here ('-': stdout, the summary then on stderr).")
@click.option("--start", "start_text", metavar="ISO",
              help="Simulate from this past instant (with a UTC offset); refused if the plan would run past now. "
                   "Default: far enough in the past for the plan to end before now.")
@click.option("--gap", "gap_s", default=30, show_default=True, type=click.IntRange(0, 86_400),
              help="Simulated seconds between two session openings.")
@click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path), help="Folder for the simulator's SQLite store.")
@pass_cli
def simulate(ctx: CliContext, provider_name: str, players: int, sessions: int, seed: int, faults: tuple[str, ...],
             timeout_share: float, rounds: int, funding: str, url: str | None, report_out: str | None,
             start_text: str | None, gap_s: int, store_dir: Path | None) -> None:
    """Run seeded sessions (open, play, close; some time out) through the real HTTP client.

    Starts a simulator on loopback (or uses --url), resolves whatever is in
    doubt, then checks that every player's money adds up to the cent and the
    ledger is clean. Exits 1 if it does not.

    Every time the run writes comes from one simulated clock that starts at
    --start (or early enough) and never passes now; a --start too late for
    the plan is refused (exit 2) before anything is written.

    \b
    Example:
      tw simulate --provider acme --players 20 --sessions 200 --seed 7 \\
         --faults transfer:500=0.2,transfer:429=0.1,transfer:lost=0.05 --report-out acme-report.csv
      tw simulate --provider acme --start 2026-11-24T08:00:00+00:00 --sessions 100 --gap 120
    """
    from transfer_wallet.config import provider_config
    from transfer_wallet.errors import ValidationError
    from transfer_wallet.simulator.faults import split_rules
    from transfer_wallet.simulator.loadgen import SimulationPlan, prepare_clock, run_simulation
    from transfer_wallet.timeutil import parse_instant

    rules = split_rules(faults)
    try:
        start = parse_instant(start_text, "--start") if start_text is not None else None
    except ValidationError as error:
        fail(str(error), 2)
    plan = SimulationPlan(players=players, sessions=sessions, seed=seed, faults=rules, timeout_share=timeout_share,
                          rounds_per_session=rounds, funding=funding, url=url,
                          report_out=_report_path(report_out),
                          start=start, session_gap_s=gap_s)
    config = provider_config(provider_name, ctx.providers_path())
    try:
        prepare_clock(config, plan)  # a --start that would run past now is a usage error, found before any write
    except ValidationError as error:
        fail(str(error), 2)
    if store_dir is not None:
        store_dir.mkdir(parents=True, exist_ok=True)
    with progress_bar("simulating sessions") as progress:
        summary = run_simulation(ctx.database(create=True), config, plan, store_dir=store_dir, progress=progress)
    if report_out == STDOUT and plan.report_out is not None:
        write_file(STDOUT, plan.report_out.read_bytes())
        plan.report_out.unlink()
    document = summary.as_dict()

    def text() -> str:
        lines = [
            f"simulated {document['sessions']} sessions at {document['provider']} (run {document['run_id']}): "
            + ", ".join(f"{k} {v}" for k, v in document["by_status"].items()),
            f"  money in {document['moved_in']} {document['currency']}, out {document['moved_out']}; rounds {document['rounds']}",
            f"  in doubt {document['in_doubt']}, stuck {document['stuck']}, discrepancies {document['discrepancies']}, "
            f"resolution passes {document['resolution_passes']}",
            "  failures: " + (", ".join(f"{k} {v}" for k, v in document["failures"].items()) or "none"),
            f"  simulated from {ctx.when(document['started_at'])} to {ctx.when(document['ended_at'])}",
            f"  money conserved: {'yes' if summary.conserved else 'NO'}; ledger check: {'clean' if summary.ledger_clean else 'FINDINGS'}",
        ]
        lines += [f"  mismatch: {m}" for m in document["mismatches"]]
        return "\n".join(lines)

    emit(ctx, document, text=text, err=report_out == STDOUT)
    if not (summary.conserved and summary.ledger_clean):
        sys.exit(1)


def _report_path(report_out: str | None) -> Path | None:
    """Where the simulator writes its report: the file given, or a scratch file copied to stdout for ``-``."""
    if report_out != STDOUT:
        return Path(report_out) if report_out is not None else None
    import tempfile

    handle, name = tempfile.mkstemp(prefix="tw-simulate-report-", suffix=".csv")
    os.close(handle)
    return Path(name)
