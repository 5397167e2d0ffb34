"""Scheduled jobs of transfer-wallet (APScheduler 3.x).

Each job is a plain function ``run(db, *, now=...) -> report`` that the CLI can
also run once. The package depends on ``transfer_wallet`` and never on ``cli``.
"""
