"""fenced: hold a fenced lock correctly from Python.

The package binds the Rust ``fenced-client`` (keepalive, local validity
deadline, lost-lock signal, retry-safe request ids) and the fenced store
client; nothing of the protocol is re-implemented in Python.

    import fenced

    client = fenced.Client(["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"])
    store = fenced.Store("127.0.0.1:7100")
    with client.lock("orders", ttl=10, wait=5) as lock:
        store.put("orders/1", b"paid", lock=lock)  # StaleToken if a later holder wrote

See docs/python.md.
"""

from ._async import AsyncClient, AsyncHold, AsyncLock, AsyncLockRequest, AsyncPermit, AsyncStore
from ._common import TLS, Claim, Holder, LockStatus, Object, SemPermits, Written
from ._sync import Client, Hold, Lock, LockRequest, Permit, Store
from .errors import (
    BadToken,
    Busy,
    Cancelled,
    ClientClosed,
    Error,
    Forbidden,
    InvalidArgument,
    LockLost,
    NotHolder,
    ProtocolError,
    RateLimited,
    Refused,
    StaleToken,
    Unauthorized,
    Unavailable,
    VersionMismatch,
    WaitTimeout,
)

__all__ = [
    "AsyncClient",
    "AsyncHold",
    "AsyncLock",
    "AsyncLockRequest",
    "AsyncPermit",
    "AsyncStore",
    "BadToken",
    "Busy",
    "Cancelled",
    "Claim",
    "Client",
    "ClientClosed",
    "Error",
    "Forbidden",
    "Hold",
    "Holder",
    "InvalidArgument",
    "Lock",
    "LockLost",
    "LockRequest",
    "LockStatus",
    "NotHolder",
    "Object",
    "Permit",
    "ProtocolError",
    "RateLimited",
    "Refused",
    "SemPermits",
    "StaleToken",
    "Store",
    "TLS",
    "Unauthorized",
    "Unavailable",
    "VersionMismatch",
    "WaitTimeout",
    "Written",
]
