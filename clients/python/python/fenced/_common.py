"""Argument checks and result types shared by the sync and asyncio APIs.

Every check here runs before anything is sent: a wrong type raises
``TypeError``, a wrong value :class:`fenced.InvalidArgument` (a
``ValueError``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Union

from .errors import InvalidArgument

#: Longest TTL or wait accepted locally (the cluster's own ``--max-ttl`` is
#: usually far lower and is enforced by the server, with its reason).
MAX_SECONDS = 366 * 24 * 3600.0
#: Longest lock, election or key name accepted locally.
MAX_NAME = 1024


@dataclass(frozen=True)
class TLS:
    """TLS to the replicas or the store: ``ca`` verifies the servers;
    ``cert`` and ``key`` (PEM paths) identify this client (mutual TLS)."""

    ca: str
    cert: Optional[str] = None
    key: Optional[str] = None


@dataclass(frozen=True)
class Holder:
    """A lock's current holder."""

    lease: int
    token: int
    value: str


@dataclass(frozen=True)
class LockStatus:
    """A lock's (or a semaphore's) linearizable status: the exclusive
    ``holder``, the queued leases, the shared holders of a lock or the
    permit holders of a semaphore (``holders``), and a semaphore's count
    (``permits``; ``None`` for a lock)."""

    lock: str
    holder: Optional[Holder]
    waiters: List[int]
    holders: List[Holder] = field(default_factory=list)
    permits: Optional[int] = None


@dataclass(frozen=True)
class SemPermits:
    """A semaphore's count after :meth:`Client.set_permits`: ``held`` may
    exceed a lowered count until holders give their permits back."""

    name: str
    permits: int
    held: int


@dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`Client.claim`: ``won`` if this call created it."""

    name: str
    token: int
    owner: str
    won: bool


@dataclass(frozen=True)
class Object:
    """A value read from the fenced store."""

    value: bytes
    version: int
    token: int


@dataclass(frozen=True)
class Written:
    """An accepted store write."""

    version: int
    token: int


def election_lock(election: str) -> str:
    """Elections are locks named ``election:<name>`` (as the server's
    ``/v1/election/*`` routes define them)."""
    return "election:" + check_name("election", election)


def check_name(what: str, name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, not {type(name).__name__}")
    if not name:
        raise InvalidArgument(f"{what} must not be empty", code="invalid_argument")
    if len(name.encode()) > MAX_NAME:
        raise InvalidArgument(f"{what} is longer than {MAX_NAME} bytes", code="invalid_argument")
    if "\x00" in name:
        raise InvalidArgument(f"{what} must not contain NUL", code="invalid_argument")
    return name


def check_seconds(what: str, v: Any, *, zero_ok: bool) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(v).__name__}")
    f = float(v)
    if not math.isfinite(f) or f < 0 or (f == 0 and not zero_ok):
        lo = ">= 0" if zero_ok else "> 0"
        raise InvalidArgument(f"{what} must be finite and {lo} seconds, got {v!r}", code="invalid_argument")
    if f > MAX_SECONDS:
        raise InvalidArgument(f"{what} of {v!r} s is more than a year", code="invalid_argument")
    return f


def check_str(what: str, v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"{what} must be a str, not {type(v).__name__}")
    return v


def check_flag(what: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"{what} must be a bool, not {type(v).__name__}")
    return v


def check_endpoints(endpoints: Any) -> List[str]:
    if isinstance(endpoints, str):
        endpoints = [e.strip() for e in endpoints.split(",") if e.strip()]
    if not isinstance(endpoints, Sequence) or isinstance(endpoints, (bytes, bytearray)):
        raise TypeError("endpoints must be a list of 'host:port' strings or one comma-separated str")
    out = []
    for e in endpoints:
        if not isinstance(e, str):
            raise TypeError(f"an endpoint must be a str, not {type(e).__name__}")
        if ":" not in e or e.startswith(":") or e.endswith(":"):
            raise InvalidArgument(f"endpoint {e!r} is not host:port", code="invalid_argument")
        out.append(e)
    if not out:
        raise InvalidArgument("no endpoints given", code="invalid_argument")
    return out


def check_tls(tls: Any) -> Optional[TLS]:
    if tls is not None and not isinstance(tls, TLS):
        raise TypeError("tls must be a fenced.TLS(ca=..., cert=..., key=...) or None")
    return tls  # type: ignore[no-any-return]


def check_token(v: Any) -> Optional[str]:
    if v is not None and not isinstance(v, str):
        raise TypeError("bearer_token must be a str or None")
    return v  # type: ignore[no-any-return]


def as_bytes(value: Union[bytes, bytearray, memoryview, str]) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"value must be bytes or str, not {type(value).__name__}")


def _holder(h: Any) -> Holder:
    return Holder(lease=h["lease"], token=h["token"], value=h.get("value", ""))


def parse_status(text: str) -> LockStatus:
    d = json.loads(text)
    h = d.get("holder")
    return LockStatus(
        lock=d["lock"],
        holder=_holder(h) if h else None,
        waiters=list(d.get("waiters", [])),
        holders=[_holder(x) for x in d.get("holders", [])],
        permits=d.get("permits"),
    )


def parse_sem_permits(text: str) -> SemPermits:
    d = json.loads(text)
    return SemPermits(name=d["name"], permits=d["permits"], held=d["held"])


#: Most permits a semaphore may have (the cluster's ``permits_max`` default;
#: the cluster enforces its own).
MAX_PERMITS = 10_000


def check_permits(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"permits must be an int, not {type(v).__name__}")
    if v < 0 or v > MAX_PERMITS:
        raise InvalidArgument(
            f"permits must be in 0..={MAX_PERMITS} (0 deletes an unused semaphore), got {v}", code="invalid_argument"
        )
    return v


def parse_claim(text: str) -> Claim:
    d = json.loads(text)
    return Claim(name=d["name"], token=d["token"], owner=d["owner"], won=d["won"])
