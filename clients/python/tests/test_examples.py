"""The examples run as documented, against the test cluster and store."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import Cluster, StoreProc

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=90)


def test_figure_8_5_example(cluster: Cluster, store: StoreProc) -> None:
    r = run(os.path.join(EXAMPLES, "figure_8_5.py"), "--endpoints", ",".join(cluster.endpoints), "--store", store.addr, "--ttl", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "refused: stale fencing token" in r.stdout


def test_run_once_leader_and_pool_examples(cluster: Cluster, store: StoreProc) -> None:
    eps = ",".join(cluster.endpoints)
    r = run(os.path.join(EXAMPLES, "run_once.py"), "--endpoints", eps, "--lock", "ex-once", "--", "sh", "-c", 'test -n "$FENCED_TOKEN"')
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(os.path.join(EXAMPLES, "leader_election.py"), "--endpoints", eps, "--name", "a", "--lead-for", "0.5")
    assert r.returncode == 0 and "leading with token" in r.stdout, r.stdout + r.stderr
    r = run(os.path.join(EXAMPLES, "worker_pool.py"), "--endpoints", eps, "--store", store.addr, "--jobs", "12", "--workers", "3")
    assert r.returncode == 0 and "12 jobs done" in r.stdout, r.stdout + r.stderr
