"""The staging side: a provider simulator and the load generator behind ``tw simulate``.

The simulator is a real HTTP server that plays a game provider. It keeps game
wallets in its own SQLite file, verifies signatures (and remembers request ids in
that file for the replay window, so a restart does not reopen it), applies
transfers idempotently, simulates play, serves history, balance, status, the game
list and the daily transfer report, and injects seeded faults per endpoint.

    with SimulatorServer(config, "sim-acme.db", port=0) as sim:
        print(sim.url)

``admin.SimulatorAdmin`` is the client of the simulator-only endpoints (play, fault
plan, request log); ``loadgen`` is the load generator. The client side (protocol,
wire, signing, HTTP adapter) is ``transfer_wallet.providers``.
"""

from transfer_wallet.simulator.faults import FaultPlan, FaultRule, parse_rule
from transfer_wallet.simulator.report import business_day_window, render_report
from transfer_wallet.simulator.server import SimulatorServer
from transfer_wallet.simulator.store import SimulatorStore

__all__ = [
    "FaultPlan",
    "FaultRule",
    "SimulatorServer",
    "SimulatorStore",
    "business_day_window",
    "parse_rule",
    "render_report",
]
