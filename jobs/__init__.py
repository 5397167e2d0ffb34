"""Scheduled jobs of transfer-wallet: sweeps, nightly reconciliation, key age, their leases and history.

- ``timeouts``, ``in_doubt``: the sweeps, each ``run(manager, *, now=None) -> JobRun``.
- ``reconcile``: one provider's report for one business date, ``run(db, provider, business_date=None, ...)``.
- ``key_age``: provider keys older than 90 days or without their secret, ``run(db, providers, ...)``.
- ``history``: ``JobRun`` (the one result type of every job: ``summary()``, ``as_dict()``),
  ``run_window`` (lease, once-per-window check, history row) and the ``job_runs`` queries.
- ``sweep``: ``run_sweep``, a sweep under its lease.
- ``lease``: database leases by name (``sweep:in-doubt``, ``reconcile:acme:2026-12-01``),
  short-lived and renewed by a heartbeat while the job runs.
- ``holder``: who holds a lease (``host:pid:starttime``) and whether that process still lives.
- ``settings``: the ``[jobs]`` table (intervals, times, lease TTL).
- ``scheduler``: APScheduler 3.x wiring, ``serve`` (SIGTERM/SIGINT: finish, exit 0), ``overview``
  for ``tw jobs list``; one log line per run.

The package depends on ``transfer_wallet`` and never on ``cli`` or ``commands``.
"""
