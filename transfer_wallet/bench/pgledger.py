"""The plain-SQL ledger baselines of ``tw bench ledger`` (PostgreSQL), written here, not copied.

Three functions, each one round trip in autocommit, each transfer between two
funded accounts of one worker:

- ``pgledger``: ``plx_transfer`` does the work per transfer that pgledger
  (pgr0ss/pgledger, a PostgreSQL ledger in plain SQL functions) does, as its
  documentation and schema describe it: text ids with a prefix and a time-ordered
  part generated in SQL for the transfer and each entry; both accounts locked
  one by one in id order; each balance moved with its ``version`` and
  ``updated_at``; each account's allow-negative/allow-positive rules checked
  by a helper function; the currencies compared; the transfer row (``event_at``,
  ``metadata``; indexed by from, to and event time) and two entries carrying the
  balance before and after and the account version (indexed by account and
  transfer) inserted; the stored transfer returned. Its ids are pgledger's: a
  UUIDv7 at microsecond precision turned into a ULID in PL/pgSQL (what pgledger
  does on PostgreSQL < 18), three per transfer. Still a little lighter than
  pgledger: one function, where pgledger's single transfer goes through a second
  (its batch function, with an array of composite requests and a sort of the ids).
- ``pgledger_hex``: ``plx_transfer_hex``, the same transfer with the lighter ids
  this baseline had first (14 hex digits of microseconds and 18 random hex digits,
  no ULID), kept for comparison with the figures measured before.
- ``plain_sql``: ``pl_transfer``, the least a double-entry transfer needs (lock,
  conditional debit, credit, one transfer row, two entries; bigserial ids), the
  floor under any SQL ledger. Neither has idempotency keys or a request hash,
  which ours has.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from sqlalchemy.engine import make_url

from transfer_wallet.bench._harness import run_until, run_workers

PLAIN_SCHEMA = (
    "CREATE TABLE pl_accounts (id bigint PRIMARY KEY, currency text NOT NULL, "
    "balance bigint NOT NULL CHECK (balance >= 0))",
    "CREATE TABLE pl_transfers (id bigserial PRIMARY KEY, from_account_id bigint NOT NULL REFERENCES pl_accounts, "
    "to_account_id bigint NOT NULL REFERENCES pl_accounts, amount bigint NOT NULL CHECK (amount > 0), "
    "created_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE pl_entries (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES pl_accounts, "
    "transfer_id bigint NOT NULL REFERENCES pl_transfers, amount bigint NOT NULL, balance_after bigint NOT NULL, "
    "created_at timestamptz NOT NULL DEFAULT now())",
    "CREATE INDEX pl_entries_account ON pl_entries (account_id)",
    "CREATE INDEX pl_entries_transfer ON pl_entries (transfer_id)",
    """
    CREATE FUNCTION pl_transfer(p_from bigint, p_to bigint, p_amount bigint) RETURNS bigint LANGUAGE plpgsql AS $$
    DECLARE transfer bigint; from_after bigint; to_after bigint;
    BEGIN
        PERFORM 1 FROM pl_accounts WHERE id IN (p_from, p_to) ORDER BY id FOR UPDATE;
        UPDATE pl_accounts SET balance = balance - p_amount WHERE id = p_from AND balance >= p_amount
        RETURNING balance INTO from_after;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'insufficient funds in account %', p_from;
        END IF;
        UPDATE pl_accounts SET balance = balance + p_amount WHERE id = p_to RETURNING balance INTO to_after;
        INSERT INTO pl_transfers (from_account_id, to_account_id, amount) VALUES (p_from, p_to, p_amount)
        RETURNING id INTO transfer;
        INSERT INTO pl_entries (account_id, transfer_id, amount, balance_after)
        VALUES (p_from, transfer, -p_amount, from_after), (p_to, transfer, p_amount, to_after);
        RETURN transfer;
    END $$
    """,
)

def _ulid_character(position: int) -> str:
    """The PL/pgSQL expression of the ``position``-th ULID character of the uuid's 16 ``bytes``.

    A ULID is the 128 bits read as 26 groups of 5 from the most significant end, behind
    two zero bits: group ``position`` starts at bit ``5 * position - 2`` of the uuid. Its
    5 bits lie within the two bytes from the one holding its first bit (a 16-bit window).
    """
    first_bit = 5 * position - 2
    if first_bit < 0:
        return "get_byte(bytes, 0) >> 5"
    byte = first_bit // 8
    low = f"get_byte(bytes, {byte + 1})" if byte < 15 else "0"
    return f"(((get_byte(bytes, {byte}) << 8) | {low}) >> {11 - first_bit % 8}) & 31"


def _plx_ulid_function() -> str:
    """``plx_ulid(uuid)``: the ULID text, one PL/pgSQL assignment per character as pgledger's converter does."""
    assignments = "\n".join(
        f"        result := result || substr(alphabet, ({_ulid_character(position)}) + 1, 1);"
        for position in range(26))
    return f"""
    CREATE FUNCTION plx_ulid(value uuid) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
    DECLARE
        alphabet constant text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
        bytes bytea := uuid_send(value);
        result text := '';
    BEGIN
{assignments}
        RETURN result;
    END $$
    """


#: ``plx_id``: pgledger's ids, ``prefix_`` + a ULID (26 Crockford base32 characters) of a UUIDv7 at
#: microsecond precision, computed in SQL and PL/pgSQL as pgledger does on PostgreSQL < 18 (its
#: ``pgledger_uuidv7_microsecond`` and the vendored ``uuid_to_ulid``, one assignment per character).
#: ``plx_hex_id``: the lighter id this baseline used first (14 hex digits of microseconds + 18 random).
PGLEDGER_IDS = (
    """
    CREATE FUNCTION plx_uuidv7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
        SELECT (lpad(to_hex(floor(t.ms)::bigint), 12, '0')
                || '7' || lpad(to_hex(((t.ms - floor(t.ms)) * 4096)::int), 3, '0')
                || substr(replace(gen_random_uuid()::text, '-', ''), 17, 16))::uuid
          FROM (SELECT extract(epoch FROM clock_timestamp()) * 1000 AS ms) t
    $$
    """,
    _plx_ulid_function(),
    """
    CREATE FUNCTION plx_id(prefix text) RETURNS text LANGUAGE sql VOLATILE AS $$
        SELECT prefix || '_' || plx_ulid(plx_uuidv7())
    $$
    """,
    """
    CREATE FUNCTION plx_hex_id(prefix text) RETURNS text LANGUAGE sql VOLATILE AS $$
        SELECT prefix || '_' || lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000000)::bigint), 14, '0')
               || substr(replace(gen_random_uuid()::text, '-', ''), 1, 18)
    $$
    """,
)

#: ``plx_transfer`` (pgledger's ids) and ``plx_transfer_hex`` (the lighter ids): one body, the id function substituted.
_PLX_TRANSFER = """
    CREATE FUNCTION NAME(p_from text, p_to text, p_amount bigint) RETURNS SETOF plx_transfers
    LANGUAGE plpgsql AS $$
    DECLARE account_id text; source plx_accounts; target plx_accounts; new_id text;
    BEGIN
        IF p_amount <= 0 THEN RAISE EXCEPTION 'amount must be positive'; END IF;
        IF p_from = p_to THEN RAISE EXCEPTION 'a transfer needs two accounts'; END IF;
        FOR account_id IN SELECT unnest(ARRAY[p_from, p_to]) ORDER BY 1 LOOP
            PERFORM 1 FROM plx_accounts WHERE id = account_id FOR UPDATE;
        END LOOP;
        UPDATE plx_accounts SET balance = balance - p_amount, version = version + 1, updated_at = now()
         WHERE id = p_from RETURNING * INTO source;
        PERFORM plx_check_balance(source);
        UPDATE plx_accounts SET balance = balance + p_amount, version = version + 1, updated_at = now()
         WHERE id = p_to RETURNING * INTO target;
        PERFORM plx_check_balance(target);
        IF source.currency <> target.currency THEN
            RAISE EXCEPTION 'currencies differ: % and %', source.currency, target.currency;
        END IF;
        INSERT INTO plx_transfers (id, from_account_id, to_account_id, amount, created_at, event_at)
        VALUES (ID_FUNCTION('xfer'), p_from, p_to, p_amount, now(), now()) RETURNING id INTO new_id;
        INSERT INTO plx_entries (id, account_id, transfer_id, amount, balance_before, balance_after,
                                 account_version, created_at)
        VALUES (ID_FUNCTION('entr'), p_from, new_id, -p_amount, source.balance + p_amount, source.balance,
                source.version, now());
        INSERT INTO plx_entries (id, account_id, transfer_id, amount, balance_before, balance_after,
                                 account_version, created_at)
        VALUES (ID_FUNCTION('entr'), p_to, new_id, p_amount, target.balance - p_amount, target.balance,
                target.version, now());
        RETURN QUERY SELECT * FROM plx_transfers WHERE id = new_id;
    END $$
    """

PGLEDGER_SCHEMA = (
    *PGLEDGER_IDS,
    "CREATE TABLE plx_accounts (id text PRIMARY KEY DEFAULT plx_id('acct'), name text NOT NULL, "
    "currency text NOT NULL, balance bigint NOT NULL DEFAULT 0, version bigint NOT NULL DEFAULT 0, "
    "allow_negative_balance boolean NOT NULL, allow_positive_balance boolean NOT NULL, metadata jsonb, "
    "created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE plx_transfers (id text PRIMARY KEY, "
    "from_account_id text NOT NULL REFERENCES plx_accounts, to_account_id text NOT NULL REFERENCES plx_accounts, "
    "amount bigint NOT NULL, created_at timestamptz NOT NULL, event_at timestamptz NOT NULL, metadata jsonb, "
    "CHECK (amount > 0 AND from_account_id <> to_account_id))",
    "CREATE INDEX plx_transfers_from ON plx_transfers (from_account_id)",
    "CREATE INDEX plx_transfers_to ON plx_transfers (to_account_id)",
    "CREATE INDEX plx_transfers_event ON plx_transfers (event_at)",
    "CREATE TABLE plx_entries (id text PRIMARY KEY, "
    "account_id text NOT NULL REFERENCES plx_accounts, transfer_id text NOT NULL REFERENCES plx_transfers, "
    "amount bigint NOT NULL, balance_before bigint NOT NULL, balance_after bigint NOT NULL, "
    "account_version bigint NOT NULL, created_at timestamptz NOT NULL)",
    "CREATE INDEX plx_entries_account ON plx_entries (account_id)",
    "CREATE INDEX plx_entries_transfer ON plx_entries (transfer_id)",
    """
    CREATE FUNCTION plx_check_balance(account plx_accounts) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        IF account.balance < 0 AND NOT account.allow_negative_balance THEN
            RAISE EXCEPTION 'account % may not go below zero', account.id;
        END IF;
        IF account.balance > 0 AND NOT account.allow_positive_balance THEN
            RAISE EXCEPTION 'account % may not go above zero', account.id;
        END IF;
    END $$
    """,
    _PLX_TRANSFER.replace("NAME", "plx_transfer").replace("ID_FUNCTION", "plx_id"),
    _PLX_TRANSFER.replace("NAME", "plx_transfer_hex").replace("ID_FUNCTION", "plx_hex_id"),
)


def _connect(url: str) -> Any:
    import psycopg

    parsed = make_url(url)
    return psycopg.connect(
        host=parsed.host or "127.0.0.1", port=parsed.port or 5432, user=parsed.username,
        password=parsed.password, dbname=parsed.database, autocommit=True,
    )


def prepare_baselines(url: str, pairs: int, funding_minor: int = 100_000_000) -> None:
    """Both baselines' schemas, and two funded accounts per worker for each, in the database of ``url``."""
    with _connect(url) as connection:
        for statement in (*PLAIN_SCHEMA, *PGLEDGER_SCHEMA):
            connection.execute(statement)
        with connection.cursor() as cursor:
            cursor.executemany("INSERT INTO pl_accounts (id, currency, balance) VALUES (%s, 'EUR', %s)",
                               [(n, funding_minor) for n in range(1, 2 * pairs + 1)])
            cursor.executemany(
                "INSERT INTO plx_accounts (name, currency, balance, allow_negative_balance, allow_positive_balance) "
                "VALUES (%s, 'EUR', %s, false, true)",
                [(f"bench-{n}", funding_minor) for n in range(1, 2 * pairs + 1)])


#: Per baseline: how a worker finds its pair of accounts (numbered 2n+1, 2n+2) and the call of one transfer.
_SIDES = {
    "plain_sql": ("SELECT id FROM pl_accounts WHERE id IN (%s, %s) ORDER BY id", "SELECT pl_transfer(%s, %s, %s)"),
    "pgledger": ("SELECT id FROM plx_accounts WHERE name IN ('bench-' || %s, 'bench-' || %s) ORDER BY id",
                 "SELECT * FROM plx_transfer(%s, %s, %s)"),
    "pgledger_hex": ("SELECT id FROM plx_accounts WHERE name IN ('bench-' || %s, 'bench-' || %s) ORDER BY id",
                     "SELECT * FROM plx_transfer_hex(%s, %s, %s)"),
}


def _worker(side: str, url: str, pair: int, seconds: float, start_at: float, queue: multiprocessing.Queue) -> None:
    find, call = _SIDES[side]
    connection = _connect(url)
    left, right = (row[0] for row in connection.execute(find, (2 * pair + 1, 2 * pair + 2)))

    def step(n: int) -> None:
        payer, payee = (left, right) if n % 2 == 0 else (right, left)
        connection.execute(call, (payer, payee, 100)).fetchone()

    transfers = run_until(start_at, seconds, step)
    connection.close()
    queue.put(transfers)


def measure_plain_sql(url: str, clients: int, seconds: float) -> tuple[int, float]:
    """(transfers, seconds) of ``pl_transfer`` calls with ``clients`` processes."""
    return run_workers(_worker, lambda n: ("plain_sql", url, n), clients, seconds)


def measure_pgledger(url: str, clients: int, seconds: float, *, hex_ids: bool = False) -> tuple[int, float]:
    """(transfers, seconds) of ``plx_transfer`` (``plx_transfer_hex``) calls with ``clients`` processes."""
    side = "pgledger_hex" if hex_ids else "pgledger"
    return run_workers(_worker, lambda n: (side, url, n), clients, seconds)
