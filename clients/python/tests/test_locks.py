"""Acquire and release, contention, FIFO, wait timeouts, elections, claims,
the store, bad input and a closed client, against real processes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from typing import List

import pytest

import fenced
from conftest import Cluster, StoreProc

HERE = os.path.dirname(__file__)


def test_acquire_release_and_status(cluster: Cluster, store: StoreProc) -> None:
    client = fenced.Client(cluster.endpoints)
    s = fenced.Store(store.addr)
    with client.lock("basic", ttl=5) as lock:
        assert lock.is_valid()
        lock.check()
        assert lock.token > 0 and lock.lease > 0 and lock.signed_token
        st = client.status("basic")
        assert st.holder is not None and st.holder.token == lock.token
        w = s.put("basic", b"one", lock=lock)
        assert w.token == lock.token
        got = s.get("basic")
        assert got is not None and got.value == b"one" and got.token == lock.token
        assert s.max_token("basic") == lock.token
    assert client.status("basic").holder is None
    assert not lock.is_valid()
    with pytest.raises(fenced.LockLost):
        lock.check()
    assert not lock.lost.is_set(), "a release is not a loss"
    client.close()


def test_an_exception_in_the_block_releases(cluster: Cluster) -> None:
    client = fenced.Client(cluster.endpoints)
    with pytest.raises(ZeroDivisionError):
        with client.lock("raises", ttl=5):
            1 / 0
    assert client.status("raises").holder is None


def test_busy_and_wait_timeout(cluster: Cluster) -> None:
    a, b = fenced.Client(cluster.endpoints), fenced.Client(cluster.endpoints)
    with a.lock("contended", ttl=5) as held:
        with pytest.raises(fenced.Busy) as e:
            b.acquire("contended", ttl=5)
        assert e.value.holder_token == held.token and "held by lease" in str(e.value)
        t0 = time.monotonic()
        with pytest.raises(fenced.WaitTimeout) as w:
            b.acquire("contended", ttl=5, wait=0.5)
        assert time.monotonic() - t0 >= 0.45
        assert w.value.code == "wait_timeout"
        assert a.status("contended").waiters == [], "a timed-out waiter leaves the queue"


def test_contention_among_threads(cluster: Cluster) -> None:
    client = fenced.Client(cluster.endpoints)
    inside = 0
    most = 0
    counter = 0
    tokens: List[int] = []
    mu = threading.Lock()

    def worker() -> None:
        nonlocal inside, most, counter
        for _ in range(4):
            with client.lock("threads", ttl=5, wait=20) as lock:
                with mu:
                    inside += 1
                    most = max(most, inside)
                    tokens.append(lock.token)
                c = counter
                time.sleep(0.002)
                counter = c + 1
                with mu:
                    inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert most == 1 and counter == 32
    assert tokens == sorted(tokens) and len(set(tokens)) == 32, "tokens grow with each holder"


def test_contention_among_processes(cluster: Cluster, store: StoreProc) -> None:
    worker = os.path.join(HERE, "worker_proc.py")
    procs = [
        subprocess.Popen(
            [sys.executable, worker, ",".join(cluster.endpoints), store.addr, "procs", "4"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    spans = []
    for p in procs:
        out, _ = p.communicate(timeout=90)
        assert p.returncode == 0, out
        spans += [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(spans) == 12
    spans.sort(key=lambda s: s["start"])
    for x, y in zip(spans, spans[1:]):
        # Held spans (acquire answered .. release sent) never overlap, and
        # the token grows from one holder to the next.
        assert x["end"] <= y["start"], (x, y)
        assert x["token"] < y["token"]
    assert fenced.Store(store.addr).max_token("procs") == spans[-1]["token"]


def test_waiters_are_served_first_in_first_out(cluster: Cluster) -> None:
    client = fenced.Client(cluster.endpoints)
    order: List[int] = []
    holder = client.acquire("fifo", ttl=5)

    def waiter(i: int) -> None:
        with client.lock("fifo", ttl=5, wait=30):
            order.append(i)

    threads = []
    for i in range(4):
        t = threading.Thread(target=waiter, args=(i,))
        t.start()
        threads.append(t)
        deadline = time.monotonic() + 10
        while len(client.status("fifo").waiters) < i + 1:
            assert time.monotonic() < deadline, "waiter did not queue"
            time.sleep(0.01)
    holder.release()
    for t in threads:
        t.join(30)
    assert order == [0, 1, 2, 3]


def test_elections_and_claims(cluster: Cluster) -> None:
    a, b = fenced.Client(cluster.endpoints), fenced.Client(cluster.endpoints)
    assert a.observe("leader-e") is None
    term = a.campaign("leader-e", "node-a", ttl=5)
    seen = b.observe("leader-e")
    assert seen is not None and seen.value == "node-a" and seen.token == term.token
    with pytest.raises(fenced.WaitTimeout):
        b.campaign("leader-e", "node-b", ttl=5, wait=0.3)
    a.resign(term)
    term_b = b.campaign("leader-e", "node-b", ttl=5, wait=5)
    assert term_b.token > term.token and a.observe("leader-e").value == "node-b"  # type: ignore[union-attr]
    b.resign(term_b)

    first = a.claim("run-once-job", "a")
    second = b.claim("run-once-job", "b")
    assert first.won and not second.won and second.owner == "a" and second.token == first.token
    views = a.cluster_status()
    assert len(views) == 3 and all("status" in v for v in views)


def test_store_compare_and_set_and_forged_tokens(cluster: Cluster, store: StoreProc) -> None:
    client = fenced.Client(cluster.endpoints)
    s = fenced.Store(store.addr)
    with client.lock("cas", ttl=5) as lock:
        w = s.put("cas", "v1", lock=lock, if_version=0)
        with pytest.raises(fenced.VersionMismatch) as vm:
            s.put("cas", "v2", lock=lock, if_version=w.version + 5)
        assert vm.value.current == w.version
        s.put("cas", "v2", lock=lock, if_version=w.version)
        with pytest.raises(fenced.BadToken):
            s.put("cas", "forged", token=lock.token + 1000, signed_token=lock.signed_token)
        with pytest.raises(fenced.BadToken):
            s.put("cas", "unsigned", token=lock.token + 1000)
    got = s.get("cas")
    assert got is not None and got.value == b"v2"


BAD_CALLS = [
    (lambda c: c.lock("", ttl=5), fenced.InvalidArgument),
    (lambda c: c.lock(7, ttl=5), TypeError),
    (lambda c: c.lock(None, ttl=5), TypeError),
    (lambda c: c.lock("x", ttl=-1), ValueError),
    (lambda c: c.lock("x", ttl=0), ValueError),
    (lambda c: c.lock("x", ttl=math.inf), ValueError),
    (lambda c: c.lock("x", ttl=math.nan), ValueError),
    (lambda c: c.lock("x", ttl=1e30), ValueError),
    (lambda c: c.lock("x", ttl="10"), TypeError),
    (lambda c: c.lock("x", ttl=True), TypeError),
    (lambda c: c.lock("x", ttl=5, wait=-1), ValueError),
    (lambda c: c.lock("x", ttl=5, value=3), TypeError),
    (lambda c: c.lock("x" * 5000, ttl=5), ValueError),
    (lambda c: c.claim("", "me"), ValueError),
    (lambda c: c.status(b"x"), TypeError),
    (lambda c: c.resign("x"), TypeError),
]


@pytest.mark.parametrize("call,exc", BAD_CALLS)
def test_bad_input_raises_before_sending(cluster: Cluster, call, exc) -> None:  # type: ignore[no-untyped-def]
    client = fenced.Client(cluster.endpoints)
    with pytest.raises(exc):
        call(client)


def test_bad_construction_and_server_refusals(cluster: Cluster, store: StoreProc) -> None:
    with pytest.raises(fenced.InvalidArgument):
        fenced.Client([])
    with pytest.raises(fenced.InvalidArgument):
        fenced.Client(["no-port"])
    with pytest.raises(TypeError):
        fenced.Client([1, 2])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        fenced.Client(cluster.endpoints, tls="yes")  # type: ignore[arg-type]
    with pytest.raises(fenced.InvalidArgument):
        fenced.Client(cluster.endpoints, bearer_token="bad\ntoken")
    # A TTL the cluster cannot honour: refused by the server, with its reason.
    with pytest.raises(fenced.InvalidArgument) as e:
        fenced.Client(cluster.endpoints).acquire("short", ttl=0.1)
    assert "minimum" in str(e.value) and e.value.status == 400
    s = fenced.Store(store.addr)
    with pytest.raises(TypeError):
        s.put("k", 12, token=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        s.put("k", b"v")
    # Nothing listens there: Unavailable, bounded by the call timeout.
    dead = fenced.Client(["127.0.0.1:9"], request_timeout=0.2, call_timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(fenced.Unavailable):
        dead.status("x")
    assert time.monotonic() - t0 < 5


def test_a_closed_client_refuses_and_released_its_locks(cluster: Cluster) -> None:
    client = fenced.Client(cluster.endpoints)
    lock = client.acquire("closing", ttl=5)
    client.close()
    with pytest.raises(fenced.ClientClosed):
        client.lock("closing", ttl=5)
    with pytest.raises(fenced.ClientClosed):
        client.status("closing")
    assert fenced.Client(cluster.endpoints).status("closing").holder is None
    assert not lock.is_valid()
    s = fenced.Store("127.0.0.1:9")
    s.close()
    with pytest.raises(fenced.ClientClosed):
        s.get("k")


def test_errors_pickle_with_their_numbers() -> None:
    import pickle

    e = fenced.StaleToken("stale", code="stale_token", presented=3, current=9)
    f = pickle.loads(pickle.dumps(e))
    assert isinstance(f, fenced.StaleToken) and f.presented == 3 and f.current == 9 and str(f) == "stale"
    assert issubclass(fenced.InvalidArgument, ValueError) and issubclass(fenced.Busy, fenced.Error)
