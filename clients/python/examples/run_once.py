"""A run-once job: the Python twin of `fenced lock hold`.

Runs COMMAND while holding LOCK; the lock is released when it ends. If the
lock is lost while the command runs (the cluster unreachable past the
lease's validity, or the lease revoked), the command is terminated.

    python examples/run_once.py --endpoints 127.0.0.1:7001 --lock nightly-report -- sleep 5
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import fenced


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoints", default="127.0.0.1:7001", help="replicas, comma-separated host:port")
    ap.add_argument("--lock", required=True)
    ap.add_argument("--ttl", type=float, default=10.0)
    ap.add_argument("--wait", type=float, default=0.0, help="seconds to queue for the lock (0: try once)")
    ap.add_argument("command", nargs="+")
    args = ap.parse_args()

    client = fenced.Client(args.endpoints)
    try:
        with client.lock(args.lock, ttl=args.ttl, wait=args.wait) as lock:
            print(f"holding {lock.name!r} with token {lock.token}", file=sys.stderr)
            env_token = {"FENCED_TOKEN": str(lock.token), "FENCED_SIGNED_TOKEN": lock.signed_token}
            child = subprocess.Popen(args.command, env={**os.environ, **env_token})
            lock.on_lost(lambda _l: child.terminate())
            code = child.wait()
            if lock.lost.is_set():
                print(f"lock lost ({lock.lost_reason}); the command was terminated", file=sys.stderr)
                return 75
            return code
    except fenced.Busy as e:
        print(f"{args.lock!r} is held elsewhere (token {e.holder_token}); not running", file=sys.stderr)
        return 1
    except fenced.Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
