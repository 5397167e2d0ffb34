"""Scheduled jobs of transfer-wallet: the timeout and in-doubt sweeps, their leases, the scheduler.

- ``timeouts``, ``in_doubt``: one module per job, each ``run(manager, *, now=None) -> JobRun``,
  which the scheduler runs on an interval and ``tw jobs run NAME`` runs once.
- ``sweep``: ``JobRun`` (skipped with the holder and expiry, or the sweep's report) and
  ``run_sweep``, which runs a sweep under its lease.
- ``lease``: database leases by name (``sweep:in-doubt``, later per window such as
  ``reconcile:acme:2026-12-01``), short-lived and renewed by a heartbeat while the job runs.
- ``holder``: who holds a lease (``host:pid:starttime``) and whether that process still lives.
- ``scheduler``: APScheduler 3.x wiring, one log line per run.

The package depends on ``transfer_wallet`` and never on ``cli`` or ``commands``.
"""
