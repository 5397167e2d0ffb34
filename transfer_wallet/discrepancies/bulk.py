"""Many rows in one statement: the bulk INSERT and UPDATE behind ``record_many``.

On PostgreSQL an INSERT of many rows is one ``INSERT ... SELECT * FROM unnest(:a, :b, ...)``
with one array parameter per column: a short statement whatever the row count. (SQLAlchemy's
multi-row ``VALUES`` sends 21 placeholders a row, and psycopg parses such a long statement in
Python every time, without its cache: at 12,000 rows that parsing was most of the persist
stage.) On SQLite the rows go through SQLAlchemy's executemany, a multi-row ``VALUES``.

Every row given to one call has the same keys (column names) in the same order.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection


def insert_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *,
                unique: Sequence[str] = (), returning: Sequence[str] = ()) -> list[Any]:
    """Insert ``rows`` into ``table`` in one statement; with ``unique``, a row whose key exists is skipped
    (``ON CONFLICT (unique) DO NOTHING``). Returns the ``returning`` columns of the rows inserted
    (in no particular order), or ``[]``."""
    if not rows:
        return []
    names = list(rows[0])
    if connection.dialect.name == "postgresql":
        arrays = [bindparam(f"column_{index}", [row[name] for row in rows], type_=postgresql.ARRAY(table.c[name].type))
                  for index, name in enumerate(names)]
        source = func.unnest(*arrays).table_valued(*names).render_derived()
        statement: Any = postgresql.insert(table).from_select(names, select(*(source.c[name] for name in names)))
        parameters: Any = None
    else:
        statement, parameters = sqlite.insert(table), list(rows)
    if unique:
        statement = statement.on_conflict_do_nothing(index_elements=list(unique))
    if returning:
        statement = statement.returning(*(table.c[name] for name in returning))
    result = connection.execute(statement, parameters)
    return list(result.all()) if returning else []


def update_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *, key: str = "id",
                extra: Mapping[str, Any] | None = None) -> None:
    """``UPDATE table SET ... WHERE key = row[key]`` for each of ``rows`` (an executemany): every other
    key of a row is a column to set; ``extra`` adds SET clauses (SQL expressions may use ``bindparam``
    names the rows carry)."""
    if not rows:
        return
    statement = update(table).where(table.c[key] == bindparam(f"where_{key}"))
    if extra:
        statement = statement.values(**extra)
    connection.execute(statement, [{(f"where_{key}" if name == key else name): value for name, value in row.items()}
                                   for row in rows])
