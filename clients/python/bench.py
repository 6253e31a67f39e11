"""The Python package beside the Rust client, in one run, on one cluster.

    python clients/python/bench.py --endpoints 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003

(`fenced dev` starts such a cluster.) Measures, for each client:
  1. one thread, uncontended: the mean acquire+release cycle time;
  2. 64 threads (Python) / 64 tasks (Rust), each on its own lock: cycles/s.
The Rust figures come from `fenced._native.rust_cycles`: the same compiled
`fenced-client` running its loop on the module's runtime, with no Python in
the loop. Each cycle is: grant a lease, acquire, release, revoke (four log
entries), as `Client::acquire` + `Guard::release` do. Not a test: it prints
numbers for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import List

import fenced
from fenced import _native


def python_cycles(endpoints: List[str], workers: int, seconds: float, ttl: float, prefix: str) -> "tuple[int, int, float]":
    client = fenced.Client(endpoints)
    counts = [0] * workers
    errors = [0] * workers
    start = time.monotonic()

    def loop(i: int) -> None:
        while time.monotonic() - start < seconds:
            try:
                with client.lock(f"{prefix}{i}", ttl=ttl):
                    pass
                counts[i] += 1
            except fenced.Error:
                errors[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    client.close()
    return sum(counts), sum(errors), elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", default="127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2, help="alternate Rust and Python this many times")
    args = ap.parse_args()
    eps = [e.strip() for e in args.endpoints.split(",")]
    ttl = 10.0
    rows = []
    for r in range(args.rounds):
        for name, fn in (("rust", _native.rust_cycles), ("python", python_cycles)):
            ok, err, el = fn(eps, 1, args.seconds, ttl, f"bench-{name}-1-{r}-")
            rows.append((name, 1, ok, err, el))
            ok, err, el = fn(eps, args.threads, args.seconds, ttl, f"bench-{name}-n-{r}-")
            rows.append((name, args.threads, ok, err, el))
    print(f"{'client':<8}{'workers':>8}{'cycles':>9}{'errors':>8}{'cycles/s':>10}{'ms/cycle (1 worker)':>22}")
    for name, w, ok, err, el in rows:
        per = f"{el / ok * 1000:.2f}" if w == 1 and ok else ""
        print(f"{name:<8}{w:>8}{ok:>9}{err:>8}{ok / el:>10.1f}{per:>22}")
    for w in (1, args.threads):
        rust = sum(ok / el for n, ww, ok, _, el in rows if n == "rust" and ww == w)
        py = sum(ok / el for n, ww, ok, _, el in rows if n == "python" and ww == w)
        print(f"python/rust throughput at {w} worker(s): {py / rust:.2f}" if rust else "no rust cycles")


if __name__ == "__main__":
    main()
