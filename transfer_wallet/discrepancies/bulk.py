"""Many rows in one statement: the bulk INSERT and UPDATE behind ``record_many``.

On PostgreSQL an INSERT of many rows is one ``INSERT ... SELECT ... FROM
json_populate_recordset(NULL::table, :rows)``: one JSON parameter, the rows typed as the table's
own columns by the server. (SQLAlchemy's multi-row ``VALUES`` sends 21 placeholders a row, and
psycopg parses such a long statement in Python every time, without its cache: at 12,000 rows
that parsing was most of the persist stage; one array parameter per column, ``unnest``, was
better, but psycopg quotes each array element in Python; ``json.dumps`` is C.) An UPDATE of many
rows is likewise one ``UPDATE ... FROM json_populate_recordset(...)``. On SQLite the rows go
through SQLAlchemy's executemany (a multi-row ``VALUES`` for an INSERT).

The JSON skips SQLAlchemy's type processing: values are what the columns take (text, integers,
dates, aware datetimes; a naive datetime is refused as ``UtcDateTime`` refuses it).

Every row given to one call has the same keys (column names) in the same order.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Collection, Mapping, Sequence

from sqlalchemy import Table, Text, bindparam, cast, func, literal_column, select, update
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
        source = _given(table, names, rows)
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
                add: Collection[str] = ()) -> None:
    """``UPDATE table SET ... WHERE key = row[key]`` for each of ``rows``: every other key of a row is a
    column set to its value, or, for the columns in ``add``, increased by it (``times_seen + 2``).

    PostgreSQL: one ``UPDATE ... FROM json_populate_recordset(...)``; SQLite: an executemany."""
    if not rows:
        return
    names = [name for name in rows[0] if name != key]
    if connection.dialect.name == "postgresql":
        given = _given(table, [key, *names], rows)
        connection.execute(update(table).where(table.c[key] == given.c[key]).values(
            {name: table.c[name] + given.c[name] if name in add else given.c[name] for name in names}))
        return
    statement = update(table).where(table.c[key] == bindparam(f"where_{key}")).values(
        {name: table.c[name] + bindparam(f"add_{name}") for name in names if name in add})
    connection.execute(statement, [{_sqlite_name(name, key, add): value for name, value in row.items()}
                                   for row in rows])


def _sqlite_name(name: str, key: str, add: Collection[str]) -> str:
    """The executemany parameter of ``name``: a column's own name sets it; the key and the added ones
    are bound parameters of their own."""
    return f"where_{name}" if name == key else f"add_{name}" if name in add else name


def _json_value(value: Any) -> str:
    """A date or an aware datetime as ISO-8601 text for ``json.dumps`` (PostgreSQL casts it to the column)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a column value here")


def _given(table: Table, names: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> Any:
    """``json_populate_recordset(NULL::table, :rows)``: ``rows`` as one JSON parameter, read back as
    rows of ``table``'s type (PostgreSQL); its columns ``names`` are the ones the rows carry."""
    payload = json.dumps([{name: row[name] for name in names} for row in rows], default=_json_value)
    return func.json_populate_recordset(literal_column(f"NULL::{table.name}"),
                                        cast(bindparam("rows", payload, type_=Text), postgresql.JSON)
                                        ).table_valued(*(table.c[name].name for name in names))
