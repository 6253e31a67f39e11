"""DDIA Figure 8-5 with the fenced store.

Client 1 (a child process running this script with --as-client-1) takes the
lock and writes. It is then paused (SIGSTOP, as a long GC pause would) for
longer than its lease's TTL. The lease expires, client 2 takes the lock and
writes. Client 1 wakes up and writes again: the store refuses the late
write as stale, and client 2's value stays.

    fenced dev &
    curl -s http://127.0.0.1:7001/v1/cluster/key > cluster-key.json
    fenced store serve --listen 127.0.0.1:7400 --data-dir ./.fenced-store --cluster-key cluster-key.json &
    python clients/python/examples/figure_8_5.py
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys

import fenced


def client_1(args: argparse.Namespace) -> int:
    """Hold the lock, write, wait for a line on stdin (paused meanwhile),
    then write again with the same lock."""
    client = fenced.Client(args.endpoints)
    store = fenced.Store(args.store)
    lock = client.acquire(args.key, ttl=args.ttl)
    store.put(args.key, b"client 1, on time", lock=lock)
    print(json.dumps({"token": lock.token}), flush=True)
    sys.stdin.readline()
    try:
        store.put(args.key, b"client 1, late", lock=lock)
        print(json.dumps({"accepted": True}), flush=True)
    except fenced.StaleToken as e:
        print(json.dumps({"stale": str(e), "presented": e.presented, "current": e.current}), flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoints", default="127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")
    ap.add_argument("--store", default="127.0.0.1:7400")
    ap.add_argument("--key", default="figure-8-5")
    ap.add_argument("--ttl", type=float, default=3.0)
    ap.add_argument("--as-client-1", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.as_client_1:
        return client_1(args)

    child = subprocess.Popen(
        [sys.executable, __file__, "--as-client-1", "--endpoints", args.endpoints, "--store", args.store,
         "--key", args.key, "--ttl", str(args.ttl)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        first = json.loads(child.stdout.readline())
        print(f"client 1 holds {args.key!r} with token {first['token']} and wrote")
        os.kill(child.pid, signal.SIGSTOP)
        print(f"client 1 is paused (its lease: {args.ttl:.0f} s)")

        client2 = fenced.Client(args.endpoints)
        store = fenced.Store(args.store)
        with client2.lock(args.key, ttl=10, wait=args.ttl * 4) as lock2:
            print(f"client 1's lease expired; client 2 got token {lock2.token} and writes")
            store.put(args.key, b"client 2", lock=lock2)

            os.kill(child.pid, signal.SIGCONT)
            child.stdin.write("go\n")
            child.stdin.flush()
            late = json.loads(child.stdout.readline())
        if "stale" not in late:
            print("UNEXPECTED: the store accepted client 1's late write")
            return 1
        print(f"client 1 woke up and wrote: refused: {late['stale']}")
        obj = store.get(args.key)
        assert obj is not None
        print(f"{args.key!r} holds {obj.value!r}, written with token {obj.token}")
        return 0 if obj.value == b"client 2" else 1
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGCONT)
        child.wait(30)


if __name__ == "__main__":
    sys.exit(main())
