"""asyncio: many concurrent tasks, cancellation of a waiting `async with`."""

from __future__ import annotations

import asyncio
import time
from typing import Dict, List

import pytest

import fenced
from conftest import Cluster, StoreProc


def test_a_thousand_tasks_on_ten_locks(cluster: Cluster) -> None:
    async def main() -> None:
        # One client for all: it spreads the locks over sessions of 16
        # (fenced._sync.SESSION_LOCKS), so no retry falls out of the
        # cluster's deduplication window.
        client = fenced.AsyncClient(cluster.endpoints)
        clients = [client] * 10
        inside: Dict[str, int] = {}
        most: Dict[str, int] = {}
        tokens: Dict[str, List[int]] = {}

        async def task(i: int) -> None:
            name = f"async-{i % 10}"
            async with clients[i % 10].lock(name, ttl=10, wait=120) as lock:
                inside[name] = inside.get(name, 0) + 1
                most[name] = max(most.get(name, 0), inside[name])
                tokens.setdefault(name, []).append(lock.token)
                await asyncio.sleep(0)
                inside[name] -= 1

        t0 = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(task(i) for i in range(1000))), 150)
        print(f"1000 async holds on 10 locks in {time.monotonic() - t0:.1f}s")
        assert set(most.values()) == {1}
        assert sum(len(t) for t in tokens.values()) == 1000
        all_tokens = [t for ts in tokens.values() for t in ts]
        assert len(set(all_tokens)) == 1000
        for ts in tokens.values():
            assert ts == sorted(ts)
        for i in range(10):
            st = await clients[0].status(f"async-{i}")
            assert st.holder is None and st.waiters == []
        await client.close()

    asyncio.run(main())


def test_cancelling_a_waiting_async_with_leaves_no_holder(cluster: Cluster) -> None:
    async def main() -> None:
        client = fenced.AsyncClient(cluster.endpoints)
        holder = await client.acquire("async-cancel", ttl=5)
        entered = asyncio.Event()

        async def waiter() -> None:
            async with client.lock("async-cancel", ttl=5, wait=60):
                entered.set()
                await asyncio.sleep(60)

        t = asyncio.create_task(waiter())
        for _ in range(500):
            if (await client.status("async-cancel")).waiters:
                break
            await asyncio.sleep(0.01)
        assert (await client.status("async-cancel")).waiters
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        # The cancelled acquire revoked its lease before CancelledError
        # reached us: no queue entry, and the release grants nobody.
        assert (await client.status("async-cancel")).waiters == []
        await holder.release()
        st = await client.status("async-cancel")
        assert st.holder is None and not entered.is_set()

    asyncio.run(main())


def test_async_lost_store_and_errors(cluster: Cluster, store: StoreProc) -> None:
    async def main() -> None:
        client = fenced.AsyncClient(cluster.endpoints)
        s = fenced.AsyncStore(store.addr)
        async with client.lock("async-store", ttl=5) as lock:
            lock.check()
            await s.put("async-store", b"v", lock=lock)
            got = await s.get("async-store")
            assert got is not None and got.token == lock.token
            with pytest.raises(fenced.Busy):
                await client.acquire("async-store", ttl=5)
        assert not lock.lost.is_set()
        # The lease revoked behind its holder's back (as an operator
        # would): the cluster ends the lock and the guard's watch fires.
        lock2 = await client.acquire("async-lost", ttl=5)
        seen: List[str] = []
        lock2.on_lost(lambda l: seen.append(l.lost_reason or ""))
        await asyncio.get_running_loop().run_in_executor(None, _revoke, cluster.endpoints[0], lock2.lease)
        await asyncio.wait_for(lock2.lost.wait(), 10)
        assert seen and not lock2.is_valid()
        with pytest.raises(fenced.LockLost):
            lock2.check()
        await lock2.release()
        with pytest.raises(ValueError):
            client.lock("", ttl=5)
        await client.close()
        with pytest.raises(fenced.ClientClosed):
            await client.status("x")

    asyncio.run(main())


def _revoke(endpoint: str, lease: int) -> None:
    """Revoke a lease over plain HTTP (any replica forwards to the leader)."""
    import json
    import urllib.request

    req = urllib.request.Request(
        f"http://{endpoint}/v1/lease/revoke",
        data=json.dumps({"lease": lease}).encode(),
        headers={"content-type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=5).read()
