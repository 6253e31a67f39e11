"""Faults from Python: a stopped cluster, a paused holder (Figure 8-5), a
killed leader, Ctrl-C during a wait."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List

import fenced
from conftest import Cluster, StoreProc, fenced_bin

HERE = os.path.dirname(__file__)


def test_all_replicas_stopped_lost_fires_before_the_ttl(fresh_cluster: Cluster) -> None:
    client = fenced.Client(fresh_cluster.endpoints, request_timeout=0.5, call_timeout=1.0)
    ttl = 3.0
    lock = client.acquire("stopped", ttl=ttl)
    fired: List[float] = []
    lock.on_lost(lambda _l: fired.append(time.monotonic()))
    t0 = time.monotonic()
    try:
        for i in fresh_cluster.procs:
            fresh_cluster.signal(i, signal.SIGSTOP)
        assert lock.lost.wait(ttl + 1), "lock.lost never fired"
        lost_at = time.monotonic()
        assert lost_at - t0 < ttl, f"lost fired {lost_at - t0:.2f}s after the stop, TTL {ttl}s"
        assert not lock.is_valid()
        try:
            lock.check()
            raise AssertionError("check() did not raise")
        except fenced.LockLost as e:
            assert "deadline" in e.reason or "lease" in e.reason
        deadline = time.monotonic() + 2
        while not fired and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fired and fired[0] - t0 < ttl
    finally:
        for i in fresh_cluster.procs:
            fresh_cluster.signal(i, signal.SIGCONT)
    try:
        lock.release()
    except fenced.Error:
        pass


def test_figure_8_5_a_paused_holders_late_write_is_refused(cluster: Cluster, store: StoreProc) -> None:
    holder = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "holder_proc.py"), "hold", ",".join(cluster.endpoints), "fig85", store.addr],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        first = json.loads(holder.stdout.readline())
        os.kill(holder.pid, signal.SIGSTOP)  # a GC pause, as long as we like
        client = fenced.Client(cluster.endpoints)
        s = fenced.Store(store.addr)
        # The paused holder's lease expires; the next client gets the lock.
        with client.lock("fig85", ttl=5, wait=10) as lock:
            assert lock.token > first["token"]
            s.put("fig85", b"new holder", lock=lock)
            os.kill(holder.pid, signal.SIGCONT)
            holder.stdin.write("go\n")
            holder.stdin.flush()
            late = json.loads(holder.stdout.readline())
        assert late["error"] == "StaleToken", late
        assert late["presented"] == first["token"] and late["current"] == lock.token
        got = s.get("fig85")
        assert got is not None and got.value == b"new holder"
        assert holder.wait(20) == 0
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGCONT)
            holder.kill()
            holder.wait(10)


class Recorder:
    """The project's JSON Lines history (docs/history.md)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic_ns()
        self.lines: List[Dict[str, Any]] = []
        self.mu = threading.Lock()

    def __call__(self, type_: str, process: Any, f: str, value: Any) -> None:
        with self.mu:
            self.lines.append(
                {"type": type_, "process": process, "f": f, "value": value, "time": time.monotonic_ns() - self.t0}
            )

    def unknown(self, process: Any) -> None:
        """Complete `process`'s pending invoke, if any, as `info`."""
        with self.mu:
            mine = [e for e in self.lines if e["process"] == process]
        if mine and mine[-1]["type"] == "invoke":
            self("info", process, mine[-1]["f"], {})

    def write(self, path: str) -> None:
        with open(path, "w") as out:
            for line in self.lines:
                out.write(json.dumps(line) + "\n")


def test_leader_killed_during_with_blocks_never_two_holders(fresh_cluster: Cluster) -> None:
    store = StoreProc(fresh_cluster.key())
    rec = Recorder()
    stop = time.monotonic() + 8
    outcomes: Dict[str, int] = {"ok": 0, "lost": 0, "error": 0}

    def worker(p: int) -> None:
        client = fenced.Client(fresh_cluster.endpoints, request_timeout=1.0, call_timeout=5.0)
        s = fenced.Store(store.addr, timeout=2.0)
        n = 0
        while time.monotonic() < stop and n < 200:
            n += 1
            rec("invoke", p, "acquire", {"lock": "leader-kill"})
            try:
                lock = client.acquire("leader-kill", ttl=3, wait=5)
            except (fenced.WaitTimeout, fenced.Busy) as e:
                rec("fail", p, "acquire", {"lock": "leader-kill", "reason": "held", "error": str(e)})
                continue
            except fenced.Error as e:
                rec("info", p, "acquire", {"lock": "leader-kill", "error": str(e)})
                outcomes["error"] += 1
                continue
            rec("ok", p, "acquire", {"lock": "leader-kill", "token": lock.token, "lease": lock.lease, "signed": lock.signed_token})
            try:
                with lock:
                    for i in range(3):
                        lock.check()
                        v = f"{p}-{n}-{i}"
                        rec("invoke", p, "write", {"key": "leader-kill", "token": lock.token, "value": v})
                        try:
                            s.put("leader-kill", v, lock=lock)
                            rec("ok", p, "write", {"key": "leader-kill", "token": lock.token, "value": v})
                        except fenced.StaleToken as e:
                            rec("fail", p, "write", {"key": "leader-kill", "token": lock.token, "value": v, "code": "stale_token", "current": e.current})
                            raise fenced.LockLost("stale", reason="stale") from e
                        time.sleep(0.02)
                    rec("invoke", p, "release", {"lock": "leader-kill", "token": lock.token})
                outcomes["ok"] += 1
                rec("ok", p, "release", {"lock": "leader-kill", "token": lock.token})
            except fenced.LockLost:
                outcomes["lost"] += 1
                rec.unknown(p)
            except fenced.Error:
                # A write or release whose answer was lost: outcome unknown.
                outcomes["error"] += 1
                rec.unknown(p)

    threads = [threading.Thread(target=worker, args=(p,)) for p in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(2)
        leader = fresh_cluster.leader()
        rec("info", "nemesis", "start", {"fault": "kill", "targets": [leader]})
        fresh_cluster.kill(leader)
        time.sleep(1)
        rec("info", "nemesis", "stop", {"fault": "kill", "targets": [leader], "majority_up": True})
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        got = fenced.Store(store.addr).get("leader-kill")
        if got is not None:
            rec("ok", "final", "read", {"key": "leader-kill", "value": got.value.decode(), "token": got.token, "version": got.version})
    finally:
        store.close()
    assert outcomes["ok"] > 5, outcomes
    # What the log decided: stop the replicas, read their logs back as
    # history events, so that S4 (exclusion in the log), S5 and S7 judge too.
    for i in list(fresh_cluster.procs):
        fresh_cluster.kill(i)
    dirs = [a for i in fresh_cluster.addrs for a in ("--data-dir", os.path.join(fresh_cluster.dir.name, f"r{i}"))]
    at = str(time.monotonic_ns() - rec.t0)
    log = subprocess.run([fenced_bin(), "debug", "history", "--at", at, *dirs], capture_output=True, text=True, timeout=60)
    assert log.returncode == 0, log.stderr
    log_events = [json.loads(line) for line in log.stdout.splitlines() if line.strip()]
    assert any(e["f"] == "grant" for e in log_events), log.stdout[:2000]
    rec.lines += log_events
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "history.jsonl")
        rec.write(path)
        r = subprocess.run([fenced_bin(), "check", path], capture_output=True, text=True, timeout=60)
        # 0: every property valid (1 would be a violation, 2 unknown).
        assert r.returncode == 0, r.stdout + r.stderr


def test_ctrl_c_during_a_wait_leaves_no_lock_held(cluster: Cluster) -> None:
    client = fenced.Client(cluster.endpoints)
    holder = client.acquire("interrupted", ttl=5)
    waiter = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "holder_proc.py"), "wait", ",".join(cluster.endpoints), "interrupted"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert waiter.stdout is not None
        assert json.loads(waiter.stdout.readline())["waiting"]
        deadline = time.monotonic() + 10
        while not client.status("interrupted").waiters:
            assert time.monotonic() < deadline, "the waiter never queued"
            time.sleep(0.02)
        os.kill(waiter.pid, signal.SIGINT)
        out = json.loads(waiter.stdout.readline())
        assert out == {"interrupted": True}
        assert waiter.wait(20) == 130
        # The interrupted acquire revoked its lease before the exception
        # propagated: no waiter left, and releasing grants nobody.
        assert client.status("interrupted").waiters == []
        holder.release()
        assert client.status("interrupted").holder is None
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait(10)
