"""Shared locks, re-entrant holds and semaphore permits through the Python
package, against real `fenced serve` replicas and a real `fenced store
serve` (docs/primitives.md)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
import time
from typing import Iterator, List, Optional

import pytest

import fenced
from conftest import Cluster, StoreProc


@pytest.fixture(scope="module")
def slot_store(cluster: Cluster) -> Iterator[StoreProc]:
    """A store whose keys `pool/N/` are fenced per slot of semaphore
    `pool`: each is guarded by the slot's lock `pool#N`."""
    s = StoreProc(cluster.key(), extra=[a for n in range(3) for a in ("--guard", f"pool/{n}/=pool#{n}")])
    try:
        yield s
    finally:
        s.close()


def wait_for(what: str, cond, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"not within {within}s: {what}")


def revoke(cluster: Cluster, lease: int) -> None:
    """Revoke `lease` through the API, as an operator would."""
    body = json.dumps({"lease": lease}).encode()
    for ep in cluster.endpoints:
        req = urllib.request.Request(
            f"http://{ep}/v1/lease/revoke", data=body, headers={"content-type": "application/json"}
        )
        try:
            urllib.request.urlopen(req, timeout=2).read()
            return
        except Exception:
            continue
    raise AssertionError(f"no replica revoked lease {lease}")


def test_two_shared_holders_at_once_and_a_shared_token_cannot_write(cluster: Cluster, store: StoreProc) -> None:
    a, b = fenced.Client(cluster.endpoints), fenced.Client(cluster.endpoints)
    s = fenced.Store(store.addr)
    with a.lock("py-rw", ttl=5, shared=True) as r1, b.lock("py-rw", ttl=5, shared=True) as r2:
        assert r1.mode == r2.mode == "shared"
        assert r1.is_valid() and r2.is_valid()
        assert r1.lease != r2.lease
        assert 0 < r1.token < r2.token, "each shared grant is its own log entry"
        st = a.status("py-rw")
        assert st.holder is None, "no exclusive holder"
        assert sorted(h.token for h in st.holders) == [r1.token, r2.token]
        with pytest.raises(fenced.BadToken) as e:
            s.put("py-rw", b"no", lock=r1)
        assert "exclusive" in str(e.value)
        # A fenced read with a shared token is fine: nobody wrote since.
        assert s.get("py-rw", lock=r2) is None
    assert a.status("py-rw").holders == []
    a.close()
    b.close()


def test_a_queued_writer_blocks_later_readers_and_stales_earlier_ones(cluster: Cluster, store: StoreProc) -> None:
    readers, writer = fenced.Client(cluster.endpoints), fenced.Client(cluster.endpoints)
    s = fenced.Store(store.addr)
    first = readers.acquire("py-fifo", ttl=5, shared=True)
    got: List[fenced.Lock] = []
    errors: List[BaseException] = []

    def write() -> None:
        try:
            got.append(writer.acquire("py-fifo", ttl=5, wait=20))
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    t = threading.Thread(target=write)
    t.start()
    wait_for("the writer queued", lambda: len(readers.status("py-fifo").waiters) == 1)
    # A shared request behind a queued exclusive one is not admitted, even
    # though only readers hold the lock (no writer starvation).
    with pytest.raises(fenced.Busy):
        readers.acquire("py-fifo", ttl=5, shared=True)
    assert not got, "the writer waits for the reader"
    first.release()
    t.join(20)
    assert not errors, errors
    (w,) = got
    assert w.mode == "exclusive" and w.token > first.token
    s.put("py-fifo", b"written", lock=w)
    # The earlier reader's grant is older than the last writer's: a fenced
    # read with it is refused, and says why.
    with pytest.raises(fenced.StaleToken) as e:
        s.get("py-fifo", lock=first)
    assert e.value.presented == first.token and e.value.current == w.token
    obj = s.get("py-fifo", lock=w)
    assert obj is not None and obj.value == b"written"
    w.release()
    # A reader granted after the writer reads, fenced.
    with readers.lock("py-fifo", ttl=5, shared=True) as later:
        assert later.token > w.token
        obj = s.get("py-fifo", lock=later)
        assert obj is not None and obj.token == w.token
    readers.close()
    writer.close()


def test_re_entrant_holds_count_up_and_down(cluster: Cluster) -> None:
    client = fenced.Client(cluster.endpoints)
    lock = client.acquire("py-reentrant", ttl=5)
    assert lock.holds == 1
    assert lock.reacquire() == 2
    assert lock.holds == 2
    with lock.hold() as n:
        assert n == 3 and lock.holds == 3
        holder = client.status("py-reentrant").holder
        assert holder is not None and holder.token == lock.token, "re-entrance issues no token"
    assert lock.holds == 2
    assert lock.release_hold() == 1
    holder = client.status("py-reentrant").holder
    assert holder is not None and holder.token == lock.token, "still held with one hold left"
    assert lock.release_hold() == 0, "the last hold releases the lock"
    assert client.status("py-reentrant").holder is None
    assert not lock.is_valid()
    assert not lock.lost.is_set(), "giving back the last hold is a release, not a loss"
    with pytest.raises(fenced.LockLost):
        lock.reacquire()
    client.close()


def test_a_permit_is_not_re_entrant(cluster: Cluster) -> None:
    client = fenced.Client(cluster.endpoints)
    client.set_permits("py-one", 1)
    with client.permit("py-one", ttl=5) as p:
        with pytest.raises(fenced.InvalidArgument) as e:
            p.reacquire()
        assert "permit" in str(e.value)
    client.set_permits("py-one", 0)
    client.close()


def test_permits_are_counted_and_fence_their_slot(cluster: Cluster, slot_store: StoreProc) -> None:
    client = fenced.Client(cluster.endpoints)
    s = fenced.Store(slot_store.addr)
    sp = client.set_permits("pool", 2)
    assert (sp.name, sp.permits, sp.held) == ("pool", 2, 0)
    p1 = client.acquire_permit("pool", ttl=5)
    with client.permit("pool", ttl=5) as p2:
        assert isinstance(p1, fenced.Permit) and isinstance(p2, fenced.Permit)
        assert p1.mode == p2.mode == "permit" and p1.semaphore == "pool"
        assert {p1.slot, p2.slot} == {0, 1} and p1.token < p2.token
        st = client.status("pool")
        assert st.permits == 2 and sorted(h.token for h in st.holders) == [p1.token, p2.token]
        # The count is respected: a third permit is refused at once...
        with pytest.raises(fenced.Busy):
            client.acquire_permit("pool", ttl=5)
        # ...and a waiter is let in when the count is raised.
        assert client.set_permits("pool", 3).held == 2
        with client.permit("pool", ttl=5, wait=5) as p3:
            assert p3.slot == 2 and p3.token > p2.token
            assert client.set_permits("pool", 2).held == 3, "lowering the count revokes nobody"
            assert p3.is_valid()
        # A permit writes its own slot's keys, never another slot's.
        w = s.put(f"pool/{p2.slot}/conn", b"p2", lock=p2)
        assert w.token == p2.token
        with pytest.raises(fenced.BadToken) as e:
            s.put(f"pool/{p1.slot}/conn", b"p2", lock=p2)
        assert f"pool#{p1.slot}" in str(e.value)
    # p2's slot goes to the next holder, whose token is higher; p2's late
    # write there is refused as stale.
    with client.permit("pool", ttl=5) as p4:
        assert p4.slot == p2.slot and p4.token > p2.token
        s.put(f"pool/{p4.slot}/conn", b"p4", lock=p4)
        with pytest.raises(fenced.StaleToken):
            s.put(f"pool/{p2.slot}/conn", b"late", lock=p2)
    p1.release()
    assert client.set_permits("pool", 0).permits == 0
    client.close()


def test_permit_loss_is_reported_like_a_lock(cluster: Cluster) -> None:
    client = fenced.Client(cluster.endpoints)
    client.set_permits("py-lost", 1)
    p = client.acquire_permit("py-lost", ttl=5)
    reasons: List[Optional[str]] = []
    p.on_lost(lambda lk: reasons.append(lk.lost_reason))
    # Revoking the lease behind the holder's back (an operator, or an
    # expiry) takes the permit: the guard notices and says so.
    revoke(cluster, p.lease)
    assert p.lost.wait(10), "the permit's loss was not signalled"
    assert reasons and reasons[0] is not None
    with pytest.raises(fenced.LockLost):
        p.check()
    p.release()
    client.set_permits("py-lost", 0)
    client.close()


def test_bad_arguments_are_refused_before_sending(cluster: Cluster) -> None:
    client = fenced.Client(cluster.endpoints)
    with pytest.raises(TypeError):
        client.lock("x", shared="yes")  # type: ignore[arg-type]
    with pytest.raises(fenced.InvalidArgument):
        client.set_permits("x", -1)
    with pytest.raises(fenced.InvalidArgument):
        client.set_permits("x", 10_001)
    with pytest.raises(TypeError):
        client.set_permits("x", 1.5)  # type: ignore[arg-type]
    client.close()


def test_asyncio_shared_re_entrant_and_permits(cluster: Cluster) -> None:
    async def main() -> None:
        async with fenced.AsyncClient(cluster.endpoints) as client:
            async with client.lock("py-async-rw", ttl=5, shared=True) as r1:
                async with client.lock("py-async-rw", ttl=5, shared=True) as r2:
                    assert r1.mode == r2.mode == "shared" and r1.token < r2.token
                    assert len((await client.status("py-async-rw")).holders) == 2
            async with client.lock("py-async-re", ttl=5) as lock:
                async with lock.hold() as n:
                    assert n == 2
                assert lock.holds == 1
            await client.set_permits("py-async-sem", 1)
            async with client.permit("py-async-sem", ttl=5) as p:
                assert isinstance(p, fenced.AsyncPermit) and p.slot == 0
                with pytest.raises(fenced.Busy):
                    await client.acquire_permit("py-async-sem", ttl=5)
            assert (await client.set_permits("py-async-sem", 0)).held == 0

    asyncio.run(main())
