"""Real `fenced serve` replicas and a real `fenced store serve` for the tests.

Every process is started here and ended here, by its pid (SIGCONT first, in
case a test left it stopped, then SIGKILL); nothing else is ever signalled.
Flags as in crates/fenced/tests/support/mod.rs: 50 ms heartbeats, a 300 ms
election timeout.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[3]


def fenced_bin() -> str:
    env = os.environ.get("FENCED_BIN")
    if env:
        return env
    for p in (ROOT / "target/sim/fenced", ROOT / "target/release/fenced"):
        if p.exists():
            return str(p)
    pytest.exit("no fenced binary: set FENCED_BIN or run clients/python/run-tests (it builds one)", 2)


def free_addr() -> str:
    """A loopback address of this process's own (127.a.b.c from the pid), so
    concurrent test processes and outgoing connections never collide."""
    pid = os.getpid()
    free_addr.n = getattr(free_addr, "n", 0) + 1  # type: ignore[attr-defined]
    ip = f"127.{1 + pid % 250}.{(pid // 250) % 256}.{1 + free_addr.n % 250}"  # type: ignore[attr-defined]
    with socket.socket() as s:
        s.bind((ip, 0))
        return f"{ip}:{s.getsockname()[1]}"


def http_get(addr: str, path: str, timeout: float = 1.0) -> Optional[dict]:
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=timeout) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]
    except Exception:
        return None


class Cluster:
    def __init__(self, n: int = 3) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="fenced-py-")
        self.addrs: Dict[int, str] = {i: free_addr() for i in range(1, n + 1)}
        self.procs: Dict[int, subprocess.Popen] = {}
        for i in self.addrs:
            self.spawn(i)

    @property
    def endpoints(self) -> List[str]:
        return list(self.addrs.values())

    def spawn(self, i: int) -> None:
        peers = ",".join(f"{j}={a}" for j, a in self.addrs.items())
        log = open(Path(self.dir.name) / f"r{i}.log", "ab")
        self.procs[i] = subprocess.Popen(
            [
                fenced_bin(), "serve", "--id", str(i), "--listen", self.addrs[i], "--peers", peers,
                "--data-dir", str(Path(self.dir.name) / f"r{i}"),
                "--heartbeat", "50ms", "--election-timeout", "300ms",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()

    def leader(self, within: float = 20.0) -> int:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for i, a in self.addrs.items():
                if i not in self.procs:
                    continue
                s = http_get(a, "/v1/cluster/status", 0.5)
                if s and s.get("state") == "Leader" and s.get("id") == i:
                    return i
            time.sleep(0.05)
        raise AssertionError(f"no leader within {within}s\n{self.logs()}")

    def wait_ready(self, within: float = 30.0) -> None:
        self.leader(within)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if http_get(self.endpoints[0], "/v1/cluster/key", 0.5):
                return
            time.sleep(0.05)
        raise AssertionError(f"no cluster key within {within}s\n{self.logs()}")

    def key(self) -> str:
        for a in self.endpoints:
            k = http_get(a, "/v1/cluster/key")
            if k:
                return str(k["public_key"])
        raise AssertionError("no cluster key")

    def signal(self, i: int, sig: int) -> None:
        p = self.procs.get(i)
        if p is not None and p.poll() is None:
            os.kill(p.pid, sig)

    def kill(self, i: int) -> None:
        p = self.procs.pop(i, None)
        if p is not None:
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
            p.wait(10)

    def logs(self) -> str:
        out = []
        for i in self.addrs:
            try:
                out.append(f"--- replica {i}\n" + (Path(self.dir.name) / f"r{i}.log").read_text()[-3000:])
            except OSError:
                pass
        return "\n".join(out)

    def close(self) -> None:
        for i in list(self.procs):
            self.kill(i)
        self.dir.cleanup()


class StoreProc:
    def __init__(self, key: Optional[str], extra: Optional[List[str]] = None) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="fenced-py-store-")
        self.addr = free_addr()
        log = open(Path(self.dir.name) / "store.log", "ab")
        args = [fenced_bin(), "store", "serve", "--listen", self.addr, "--data-dir", str(Path(self.dir.name) / "data")]
        args += ["--cluster-key", key] if key else ["--unsafe-no-fencing"]
        args += extra or []
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(tuple(self.addr.rsplit(":", 1)), timeout=0.5):  # type: ignore[arg-type]
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("store did not start:\n" + (Path(self.dir.name) / "store.log").read_text())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.dir.cleanup()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    c = Cluster(3)
    try:
        c.wait_ready()
        yield c
    finally:
        c.close()


@pytest.fixture(scope="session")
def store(cluster: Cluster) -> Iterator[StoreProc]:
    s = StoreProc(cluster.key())
    try:
        yield s
    finally:
        s.close()


@pytest.fixture()
def fresh_cluster() -> Iterator[Cluster]:
    """A cluster of its own, for tests that stop or kill replicas."""
    c = Cluster(3)
    try:
        c.wait_ready()
        yield c
    finally:
        c.close()
