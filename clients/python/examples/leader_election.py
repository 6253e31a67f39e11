"""Leader election: campaign, lead while the term lasts, resign.

Each instance campaigns for ELECTION with its own name; the leader does its
work fenced by its term's token and steps down on loss or after --terms.

    python examples/leader_election.py --endpoints 127.0.0.1:7001 --name a &
    python examples/leader_election.py --endpoints 127.0.0.1:7001 --name b
"""

from __future__ import annotations

import argparse
import sys
import time

import fenced


def lead(term: fenced.Lock, seconds: float) -> None:
    """The leader's work: check leadership before each step."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        term.check()  # raises fenced.LockLost when the term is over
        print(f"leading with token {term.token}")
        if term.lost.wait(0.5):
            term.check()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", default="127.0.0.1:7001")
    ap.add_argument("--election", default="example-leader")
    ap.add_argument("--name", required=True)
    ap.add_argument("--lead-for", type=float, default=3.0, help="seconds to lead before resigning")
    ap.add_argument("--terms", type=int, default=1)
    args = ap.parse_args()

    client = fenced.Client(args.endpoints)
    for _ in range(args.terms):
        current = client.observe(args.election)
        if current is not None:
            print(f"current leader: {current.value} (token {current.token})")
        try:
            term = client.campaign(args.election, args.name, ttl=5, wait=30)
        except fenced.WaitTimeout:
            print("not elected within 30 s")
            continue
        try:
            lead(term, args.lead_for)
        except fenced.LockLost as e:
            print(f"term lost: {e.reason}")
        finally:
            client.resign(term)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
