"""``tw provider``: list providers, check them, fetch reports, show key ages, run the simulator.

Thin: each command loads the provider's configuration, calls one library object
and renders the result. Library modules are imported inside the commands so that
``tw --help`` stays fast.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from commands._common import OUTPUT_FILE, STDOUT, CliContext, emit, list_output, pass_cli, write_file


@click.group()
def provider() -> None:
    """Game providers: configuration, health, game list, keys, reports and the simulator.

    \b
    Example:
      tw provider list
    """


def _config(ctx: CliContext, name: str) -> Any:
    from transfer_wallet.config import provider_config

    return provider_config(name, ctx.providers_path())


def _client(ctx: CliContext, name: str, url: str | None) -> Any:
    from transfer_wallet.providers.http import HttpProvider

    return HttpProvider(_config(ctx, name), base_url=url)


_url_option = click.option("--url", metavar="URL", help="Base URL to call instead of the one in the providers file.")


@provider.command("list")
@list_output
@pass_cli
def list_providers(ctx: CliContext) -> None:
    """List the configured providers with their currency and report format.

    \b
    Example:
      tw provider list
    """
    providers = [
        {
            "name": p.name,
            "base_url": p.base_url,
            "currency": p.currency,
            "keys": [k.key_id for k in p.keys],
            "report_timezone": p.report.timezone,
            "delimiter": p.report.delimiter,
            "decimal_separator": p.report.decimal_separator,
        }
        for p in ctx.providers().values()
    ]
    rows = [{**p, "keys": " ".join(p["keys"])} for p in providers]  # a table cell holds text
    emit(ctx, {"providers": providers}, rows=rows, columns=["name", "base_url", "currency", "keys", "report_timezone"],
         title="providers")


@provider.command("status")
@click.argument("name")
@_url_option
@pass_cli
def status(ctx: CliContext, name: str, url: str | None) -> None:
    """Ask provider NAME for its health (a signed request).

    \b
    Example:
      tw provider status acme
    """
    with _client(ctx, name, url) as client:
        current = client.status()
    document = {
        "provider": current.provider,
        "state": current.state.value,
        "currency": current.currency,
        "server_time": current.server_time,
        "version": current.version,
        "url": client.base_url,
    }
    emit(ctx, document, title=f"{name} status")


@provider.command("games")
@click.argument("name")
@_url_option
@list_output
@pass_cli
def games(ctx: CliContext, name: str, url: str | None) -> None:
    """List the games of provider NAME.

    \b
    Example:
      tw provider games betsul
    """
    with _client(ctx, name, url) as client:
        rows = [{"game_id": g.game_id, "name": g.name, "category": g.category} for g in client.games()]
    emit(ctx, {"provider": name, "games": rows}, rows=rows, title=f"{name} games")


@provider.command("keys")
@click.argument("name", required=False)
@list_output
@pass_cli
def keys(ctx: CliContext, name: str | None) -> None:
    """List signing key ids and ages; warn about keys older than 90 days (never shows secrets).

    \b
    Example:
      tw provider keys
    """
    from transfer_wallet.providers.signing import KEY_MAX_AGE_DAYS, key_ages

    providers = [_config(ctx, name)] if name else list(ctx.providers().values())
    ages = key_ages(providers, dt.date.today())
    rows = [
        {
            "provider": a.provider,
            "key_id": a.key_id,
            "secret_env": a.secret_env,
            "created": a.created,
            "age_days": a.age_days,
            "secret_set": a.secret_set,
            "warning": f"rotate (> {KEY_MAX_AGE_DAYS} days)" if a.too_old else None,
        }
        for a in ages
    ]
    for row in rows:
        if row["warning"]:
            click.echo(f"warning: key {row['key_id']} of {row['provider']} is {row['age_days']} days old; "
                       f"rotate keys every {KEY_MAX_AGE_DAYS} days", err=True)
    emit(ctx, {"keys": rows}, rows=rows, columns=["provider", "key_id", "age_days", "secret_env", "secret_set", "warning"],
         title="signing keys")


@provider.command("report")
@click.argument("name")
@click.option("--date", "business_date", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="Business date (YYYY-MM-DD) in the provider's timezone.")
@click.option("--out", "out_file", required=True, type=OUTPUT_FILE,
              help="File to write the CSV report to ('-': stdout).")
@_url_option
@pass_cli
def report(ctx: CliContext, name: str, business_date: dt.datetime, out_file: str, url: str | None) -> None:
    """Fetch the daily transfer report of provider NAME, as the provider writes it.

    \b
    Example:
      tw provider report acme --date 2026-11-24 --out acme-2026-11-24.csv
      tw provider report acme --date 2026-11-24 --out - | head
    """
    with _client(ctx, name, url) as client:
        body = client.transfer_report(business_date.date())
    write_file(out_file, body)
    rows = max(0, body.count(b"\n") - 1)
    document = {"provider": name, "date": business_date.date(), "file": out_file, "rows": rows, "bytes": len(body)}
    where = "stdout" if out_file == STDOUT else out_file
    emit(ctx, document, text=f"wrote {rows} transfer row(s) of {name} for {business_date.date()} to {where}",
         err=out_file == STDOUT)


@provider.command("play")
@click.argument("name")
@click.argument("player_id")
@click.option("--rounds", "count", default=10, show_default=True, type=click.IntRange(1, 1000),
              help="Rounds to play.")
@click.option("--seed", type=int, help="Seed of the random rounds (default: the simulator's own sequence).")
@_url_option
@pass_cli
def play(ctx: CliContext, name: str, player_id: str, count: int, seed: int | None, url: str | None) -> None:
    """Simulator only: play seeded rounds for PLAYER_ID over their game balance.

    \b
    Example:
      tw provider play acme P1 --rounds 20 --seed 7
    """
    from transfer_wallet.simulator.admin import SimulatorAdmin

    with SimulatorAdmin.connect(_config(ctx, name), base_url=url) as admin:
        played = admin.play(player_id, count, seed=seed)
        after = admin.provider.balance(player_id)
    rows = [
        {"round_id": r.round_id, "game_id": r.game_id, "bet": r.bet.format(), "win": r.win.format(),
         "refund": r.refund.format(), "ended_at": r.ended_at}
        for r in played
    ]
    emit(ctx, {"provider": name, "player_id": player_id, "rounds": rows, "balance": after.format(),
               "currency": after.currency.code}, rows=rows, title=f"{player_id} at {name}: balance {after}")


@provider.command("serve")
@click.argument("name")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: the port of base_url; 0: any free port).")
@click.option("--store", "store_file", type=click.Path(dir_okay=False),
              help="The simulator's SQLite file (default: sim-NAME.db).")
@click.option("--fault", "fault_rules", multiple=True, metavar="RULE",
              help="ENDPOINT:KIND=PROBABILITY[:PARAM], e.g. transfer:500=0.2 (repeatable; replaces the file's rules).")
@click.option("--seed", type=int, help="Seed of faults and play (default: the file's, else 0).")
@click.option("--no-faults", is_flag=True, help="Ignore the fault rules of the providers file.")
@click.option("--play-every", type=click.FloatRange(min=0.01), metavar="SECONDS",
              help="Play one round per funded player every SECONDS in the background.")
@click.option("--quiet", is_flag=True, help="Log only warnings, not every request.")
@pass_cli
def serve(
    ctx: CliContext, name: str, host: str, port: int | None, store_file: str | None, fault_rules: tuple[str, ...],
    seed: int | None, no_faults: bool, play_every: float | None, quiet: bool,
) -> None:
    """Run the simulator of provider NAME in the foreground until Ctrl-C or SIGTERM.

    Prints the URL it listens on (one line; one JSON document with --json) and logs
    every request on stderr. Secrets come from the environment variables named in the
    providers file.

    \b
    Example:
      tw provider serve acme --port 0 --fault transfer:lost=0.05 --seed 7
    """
    import logging
    import signal
    import sys
    import threading

    from transfer_wallet.simulator.server import open_simulator

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    server = open_simulator(_config(ctx, name), store=store_file, host=host, port=port, fault_rules=fault_rules,
                            seed=seed, no_faults=no_faults)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    if play_every:
        server.play_in_background(play_every)
    store = server.store.path
    document = {"provider": name, "url": server.url, "store": store, "faults": server.faults.describe()}
    emit(ctx, document, text=f"{name} simulator listening on {server.url} (store {store})")
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        click.echo(f"{name} simulator stopped", err=True)
