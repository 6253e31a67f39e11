"""The exceptions of the ``fenced`` package.

Every exception the package raises on purpose is a :class:`Error`. Each one
carries ``code`` (the server's stable machine-readable code, or the client's)
and its message is the server's reason text, so ``str(e)`` says what happened
and what to do next.
"""

from __future__ import annotations

from typing import Any, Optional


class Error(Exception):
    """Base class of every fenced error."""

    code: str
    status: Optional[int]
    retryable: bool

    def __init__(self, message: str = "", **attrs: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = attrs.pop("code", type(self).__name__)
        self.status = attrs.pop("status", None)
        self.retryable = bool(attrs.pop("retryable", False))
        for k, v in attrs.items():
            setattr(self, k, v)

    def __reduce__(self) -> Any:
        attrs = {k: v for k, v in self.__dict__.items() if k != "message"}
        return (_rebuild, (type(self), self.message, attrs))


def _rebuild(cls: type, message: str, attrs: dict) -> "Error":
    e = cls(message)
    e.__dict__.update(attrs)
    return e  # type: ignore[no-any-return]


# -- lock outcomes -----------------------------------------------------------


class Busy(Error):
    """The lock is held by someone else and ``wait`` was 0.

    ``holder_lease`` and ``holder_token`` name the current holder.
    """

    holder_lease: Optional[int]
    holder_token: Optional[int]


class WaitTimeout(Error):
    """The lock was not granted within ``wait``; the request left the queue."""


class LockLost(Error):
    """The lock may no longer be held (``check()``): stop working under it.

    ``reason`` says why: ``deadline_passed`` (no keepalive confirmed in
    time), ``lease_gone``, ``cluster: expired``, ``paused: N ms``, ...
    """

    reason: str


class NotHolder(Error):
    """The cluster says this lease does not hold the lock (any more)."""


class Cancelled(Error):
    """An acquire was cancelled; its lease was revoked, nothing is held."""


# -- the cluster or store refused or did not answer ------------------------------


class Unavailable(Error):
    """No replica (or the store) answered in time. A retry is safe: the
    client reuses request ids, so it cannot be granted twice."""


class RateLimited(Error):
    """Over the caller's request rate. ``retry_after`` is in seconds."""

    retry_after: float


class Unauthorized(Error):
    """Missing or bad credentials (HTTP 401): pass ``bearer_token=``."""


class Forbidden(Error):
    """The credentials lack the right for this name (HTTP 403)."""


class InvalidArgument(Error, ValueError):
    """A value the client or the server refuses, with the reason text
    (e.g. ``ttl 2000 ms is below this cluster's minimum of 3000 ms``).
    Also a :class:`ValueError`."""


class Refused(Error):
    """Any other refusal; see ``code`` and the message."""


class ProtocolError(Error):
    """An answer that is not what the API promises."""


class ClientClosed(Error, RuntimeError):
    """The client (or store) was closed; make a new one."""


# -- the store ------------------------------------------------------------------


class StaleToken(Error):
    """The store has accepted a higher token for this key: this writer lost
    its lock. ``presented`` and ``current`` are the store's numbers."""

    presented: int
    current: int


class BadToken(Error):
    """The signed token is missing, forged, or for another lock (HTTP 403)."""


class VersionMismatch(Error):
    """Compare-and-set refused: the key's live version is ``current``, not
    ``expected``."""

    expected: int
    current: int


__all__ = [
    "Error",
    "Busy",
    "WaitTimeout",
    "LockLost",
    "NotHolder",
    "Cancelled",
    "Unavailable",
    "RateLimited",
    "Unauthorized",
    "Forbidden",
    "InvalidArgument",
    "Refused",
    "ProtocolError",
    "ClientClosed",
    "StaleToken",
    "BadToken",
    "VersionMismatch",
]
