"""A worker process for the contention test: N times acquire, write through
the store, release; prints one JSON line per hold with CLOCK_MONOTONIC times
(shared by every process on the machine)."""

import json
import sys
import time

import fenced

endpoints, store_addr, lock_name, n = sys.argv[1].split(","), sys.argv[2], sys.argv[3], int(sys.argv[4])
client = fenced.Client(endpoints)
store = fenced.Store(store_addr)
for _ in range(n):
    lock = client.acquire(lock_name, ttl=5, wait=60)
    start = time.monotonic()
    store.put(lock_name, b"x", lock=lock)
    time.sleep(0.01)
    end = time.monotonic()
    lock.release()
    print(json.dumps({"token": lock.token, "start": start, "end": end}), flush=True)
