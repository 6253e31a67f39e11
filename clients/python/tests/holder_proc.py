"""A lock holder for the Figure 8-5 and Ctrl-C tests.

`hold`: acquire, print the token, wait for a line on stdin (the test pauses
this process meanwhile), then write through the store anyway and print the
store's answer as JSON. `wait`: queue for a held lock (the test sends SIGINT
while it waits) and print what happened.
"""

import json
import signal
import sys

import fenced

mode, endpoints, lock_name = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
client = fenced.Client(endpoints)
if mode == "hold":
    store = fenced.Store(sys.argv[4])
    lock = client.acquire(lock_name, ttl=2)
    print(json.dumps({"token": lock.token}), flush=True)
    sys.stdin.readline()
    try:
        w = store.put(lock_name, b"late write", lock=lock)
        print(json.dumps({"ok": w.token}), flush=True)
    except fenced.StaleToken as e:
        print(json.dumps({"error": "StaleToken", "presented": e.presented, "current": e.current, "message": str(e)}), flush=True)
elif mode == "wait":
    # A process started in the background by a non-interactive shell
    # inherits SIGINT ignored, and Python then installs no KeyboardInterrupt
    # handler; the test sends SIGINT, so ask for the handler explicitly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print(json.dumps({"waiting": True}), flush=True)
    try:
        client.acquire(lock_name, ttl=5, wait=60)
        print(json.dumps({"acquired": True}), flush=True)
    except KeyboardInterrupt:
        print(json.dumps({"interrupted": True}), flush=True)
        sys.exit(130)
