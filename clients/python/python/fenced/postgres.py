"""Fencing for PostgreSQL with psycopg 3: the token is a column, checked in
the same statement as the write.

The statements are the Rust adapter's (``fenced_store::adapters::postgres``),
read from the compiled module, so there is one copy of the SQL: an upsert
whose ``DO UPDATE`` fires only when the stored token is not higher than the
presented one. PostgreSQL evaluates that ``WHERE`` under the row lock, so
the comparison and the write are one atomic step at any isolation level.

    import psycopg, fenced
    from fenced.postgres import FencedTable

    with psycopg.connect(conninfo, autocommit=True) as conn:
        table = FencedTable(conn, "orders_kv")
        table.write("order-1", b"paid", lock.token)  # StaleToken if beaten

Needs ``psycopg>=3.2`` (``pip install 'psycopg[binary]'``): the statements
use PostgreSQL's own ``$1`` parameters, which psycopg runs through its
``RawCursor``.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from . import _native
from .errors import InvalidArgument, StaleToken

_BIGINT_MAX = 2**63 - 1


def statements(table: str) -> Tuple[str, str, str]:
    """``(create, upsert, select)`` for ``table`` (``[a-z_][a-z0-9_]{0,62}``)."""
    if not isinstance(table, str):
        raise TypeError("table must be a str")
    return _native.postgres_statements(table)


class FencedTable:
    """A fenced key/value table ``(key text, value bytea, fence_token bigint)``
    on a psycopg 3 connection (created if missing)."""

    def __init__(self, conn: Any, table: str) -> None:
        import psycopg

        self._psycopg = psycopg
        self.conn = conn
        self.table = table
        self._create, self._upsert, self._select = statements(table)
        with psycopg.RawCursor(conn) as cur:
            cur.execute(self._create)
        if not conn.autocommit:
            conn.commit()

    def write(self, key: str, value: bytes, token: int) -> None:
        """Write ``value`` under ``key`` with fencing token ``token`` in one
        statement; raise :class:`fenced.StaleToken` (with the row's token)
        if a higher token is stored. Commits unless the connection is in
        autocommit mode."""
        if not isinstance(key, str):
            raise TypeError("key must be a str")
        if isinstance(token, bool) or not isinstance(token, int):
            raise TypeError("token must be an int")
        if not 0 <= token <= _BIGINT_MAX:
            raise InvalidArgument(f"token {token} does not fit PostgreSQL's bigint", code="invalid_argument")
        with self._psycopg.RawCursor(self.conn) as cur:
            cur.execute(self._upsert, (key, bytes(value), token))
            rows = cur.rowcount
        if not self.conn.autocommit:
            self.conn.commit()
        if rows == 1:
            return
        current = self.read(key)
        raise StaleToken(
            f"stale fencing token {token}: row holds token {current[0] if current else '?'}",
            code="stale_token",
            presented=token,
            current=current[0] if current else None,
        )

    def read(self, key: str) -> Optional[Tuple[int, bytes]]:
        """``(token, value)`` of ``key``, or ``None``."""
        with self._psycopg.RawCursor(self.conn) as cur:
            cur.execute(self._select, (key,))
            row = cur.fetchone()
        if not self.conn.autocommit:
            self.conn.commit()
        if row is None:
            return None
        return int(row[1]), bytes(row[0])
