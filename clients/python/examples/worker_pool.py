"""A worker pool: each worker takes a job's lock, does the job, and writes
its result through the fenced store with the lock's token. A worker that
lost its lock cannot overwrite a later worker's result.

    python examples/worker_pool.py --endpoints 127.0.0.1:7001 --store 127.0.0.1:7400 --jobs 20 --workers 4
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Dict

import fenced


async def worker(n: int, client: fenced.AsyncClient, store: fenced.AsyncStore, jobs: "asyncio.Queue[int]", done: Dict[int, int]) -> None:
    while True:
        try:
            job = jobs.get_nowait()
        except asyncio.QueueEmpty:
            return
        key = f"pool/job-{job}"
        try:
            async with client.lock(key, ttl=5, wait=10) as lock:
                await asyncio.sleep(0.01)  # the work
                lock.check()  # skip a write that is probably futile
                w = await store.put(key, f"done by worker {n}", lock=lock)
                done[job] = w.token
        except fenced.StaleToken as e:
            print(f"worker {n}: job {job} was redone by a later holder (token {e.current}); result dropped")
        except fenced.LockLost as e:
            print(f"worker {n}: lost job {job}'s lock ({e.reason}); requeued")
            jobs.put_nowait(job)


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", default="127.0.0.1:7001")
    ap.add_argument("--store", default="127.0.0.1:7400")
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()

    client = fenced.AsyncClient(args.endpoints)
    store = fenced.AsyncStore(args.store)
    jobs: "asyncio.Queue[int]" = asyncio.Queue()
    for j in range(args.jobs):
        jobs.put_nowait(j)
    done: Dict[int, int] = {}
    await asyncio.gather(*(worker(n, client, store, jobs, done) for n in range(args.workers)))
    for j in range(args.jobs):
        obj = await store.get(f"pool/job-{j}")
        assert obj is not None and obj.token == done[j], f"job {j}: {obj}"
    print(f"{len(done)} jobs done, each result written under its lock's token")
    await client.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
