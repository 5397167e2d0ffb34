"""Benchmarks behind ``tw bench``: they print figures, they are not tests.

- ``ledger``: ledger transfers/s against pgbench (PostgreSQL) or raw ``sqlite3``.
- ``provider``: signed transfers/s to the simulator, pooled vs a new connection per request.
- ``sessions``: full sessions/s over HTTP and ledger-side open+close/s.
- ``_harness``: what they share (scratch databases, timed workers, pgbench, a simulator process).
"""
