"""Click command groups of the ``tw`` CLI, one module per group.

Each command parses its arguments, calls one library service, and renders the
result with :func:`commands._common.emit` (a table for people, one JSON
document with ``--json``). Library imports happen inside the command bodies so
that ``tw --help`` starts fast (no SQLAlchemy, pandas or httpx at start-up).
"""
