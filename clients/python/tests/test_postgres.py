"""The psycopg 3 fencing helper against a real PostgreSQL (FENCED_TEST_PG, a
libpq conninfo string); skipped, with the reason, without one."""

from __future__ import annotations

import os

import pytest

import fenced
from fenced.postgres import FencedTable, statements

PG = os.environ.get("FENCED_TEST_PG")


def test_the_sql_is_the_rust_adapters() -> None:
    create, upsert, select = statements("fenced_py_kv")
    assert "ON CONFLICT (key) DO UPDATE" in upsert and "WHERE t.fence_token <= EXCLUDED.fence_token" in upsert
    assert create.startswith("CREATE TABLE IF NOT EXISTS fenced_py_kv")
    assert "$1" in select
    with pytest.raises(fenced.InvalidArgument):
        statements("t; drop table x")


@pytest.mark.skipif(not PG, reason="FENCED_TEST_PG is not set (a libpq conninfo of a PostgreSQL to test against)")
def test_stale_tokens_are_refused_by_postgres() -> None:
    import psycopg

    assert PG is not None
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS fenced_py_kv")
        t = FencedTable(conn, "fenced_py_kv")
        t.write("k", b"first", 5)
        t.write("k", b"same token again", 5)
        t.write("k", b"newer", 9)
        with pytest.raises(fenced.StaleToken) as e:
            t.write("k", b"late", 7)
        assert e.value.presented == 7 and e.value.current == 9
        assert t.read("k") == (9, b"newer")
        assert t.read("absent") is None
        with pytest.raises(fenced.InvalidArgument):
            t.write("k", b"x", 2**63)
        conn.execute("DROP TABLE fenced_py_kv")
