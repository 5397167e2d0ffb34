"""The provider simulator: a real HTTP server that plays a game provider.

It keeps game wallets in its own SQLite file, verifies signatures, applies
transfers idempotently, simulates play, serves history, balance, status, the game
list and the daily transfer report, and injects seeded faults per endpoint.

    with SimulatorServer(config, "sim-acme.db", port=0) as sim:
        print(sim.url)
"""

from transfer_wallet.providers.simulator.faults import FaultPlan, FaultRule, parse_rule
from transfer_wallet.providers.simulator.report import business_day_window, render_report
from transfer_wallet.providers.simulator.server import SimulatorServer
from transfer_wallet.providers.simulator.store import SimulatorStore

__all__ = [
    "FaultPlan",
    "FaultRule",
    "SimulatorServer",
    "SimulatorStore",
    "business_day_window",
    "parse_rule",
    "render_report",
]
