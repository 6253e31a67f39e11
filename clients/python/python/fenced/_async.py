"""The asyncio API: :class:`AsyncClient`, :class:`AsyncLock`,
:class:`AsyncStore`.

Each call runs on the module's Rust runtime and completes an asyncio future
through ``loop.call_soon_threadsafe``: the event loop never blocks.
Cancelling a task that waits in ``async with client.lock(...)`` cancels the
acquire, and the lease is revoked before ``CancelledError`` propagates, so
no holder and no queue entry is left behind.
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from types import TracebackType
from typing import Any, Callable, Dict, Generator, List, Optional, Sequence, Type, Union

from . import _native
from ._common import (
    TLS,
    Claim,
    Holder,
    LockStatus,
    Object,
    SemPermits,
    Written,
    as_bytes,
    check_endpoints,
    check_flag,
    check_name,
    check_permits,
    check_seconds,
    check_str,
    check_tls,
    check_token,
    election_lock,
    parse_claim,
    parse_sem_permits,
    parse_status,
)
from ._sync import Value, _read_fence, _Sessions, _write_args
from .errors import ClientClosed, LockLost

#: How long a cancelled acquire may take to revoke its lease.
_CLEANUP_SECONDS = 15.0


def _resolve(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


async def _await(p: _native.Pending) -> Any:
    """Await a native operation. On cancellation: cancel it, await its
    clean-up (shielded, bounded), release a grant that raced the cancel,
    then re-raise."""
    loop = asyncio.get_running_loop()
    fut: "asyncio.Future[None]" = loop.create_future()

    def done() -> None:  # on a runtime thread
        try:
            loop.call_soon_threadsafe(_resolve, fut)
        except RuntimeError:  # the loop is closed: nobody is waiting
            pass

    p.add_done_callback(done)
    try:
        await asyncio.shield(fut)
    except asyncio.CancelledError:
        p.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(fut), _CLEANUP_SECONDS)
            r = p.result()
            if isinstance(r, _native.NativeGuard):
                await _await(r.release())
        except BaseException:
            pass
        raise
    return p.result()


class _LostSignal(asyncio.Event):
    """An ``asyncio.Event`` that can also be awaited directly:
    ``await lock.lost``."""

    def __await__(self) -> Generator[Any, None, bool]:
        return self.wait().__await__()


class AsyncLock:
    """A held lock, for asyncio. ``await lock.lost`` (or
    ``lock.lost.wait()``) returns when it is lost; the rest is as
    :class:`fenced.Lock`."""

    def __init__(self, client: "AsyncClient", guard: _native.NativeGuard) -> None:
        self._client = client
        self._guard = guard
        self._released = False
        self._session: Optional[_native.NativeClient] = None
        self._lost_reason: Optional[str] = None
        self._callbacks: List[Callable[["AsyncLock"], None]] = []
        self._loop = asyncio.get_running_loop()
        self.lost = _LostSignal()
        ref = weakref.ref(self)
        loop = self._loop

        def notify(reason: str) -> None:  # on a runtime thread
            lock = ref()
            if lock is None:
                return
            try:
                loop.call_soon_threadsafe(lock._final_loss, reason)
            except RuntimeError:
                pass

        guard.on_final_loss(notify)

    def _final_loss(self, reason: str) -> None:
        if self._released or self.lost.is_set():
            return
        self._lost_reason = reason
        self.lost.set()
        for cb in list(self._callbacks):
            try:
                cb(self)
            except Exception:
                import traceback

                traceback.print_exc()

    @property
    def name(self) -> str:
        return self._guard.lock

    @property
    def token(self) -> int:
        return self._guard.token

    @property
    def signed_token(self) -> str:
        return self._guard.signed_token

    @property
    def lease(self) -> int:
        return self._guard.lease

    @property
    def ttl(self) -> float:
        return self._guard.ttl

    @property
    def value(self) -> str:
        return self._guard.value

    @property
    def mode(self) -> str:
        """``"exclusive"``, ``"shared"`` or ``"permit"``."""
        return self._guard.mode

    @property
    def holds(self) -> int:
        """This lease's holds of the lock, as the cluster last answered."""
        return self._guard.holds

    async def reacquire(self) -> int:
        """One more re-entrant hold on the same lease; returns the count."""
        if self._released:
            raise LockLost(f"lock {self.name!r} was released", code="lock_lost", reason="released")
        return int(await _await(self._guard.reacquire()))

    async def release_hold(self) -> int:
        """Give back one hold; the last one is :meth:`release`."""
        if self._released:
            return 0
        if self.holds <= 1:
            await self.release()
            return 0
        return int(await _await(self._guard.release_hold()))

    def hold(self) -> "AsyncHold":
        """``async with lock.hold() as holds:``: one more hold for the block."""
        return AsyncHold(self)

    @property
    def lost_reason(self) -> Optional[str]:
        r = self._guard.lost_reason()
        return self._lost_reason or (r[0] if r else None)

    def is_valid(self) -> bool:
        return not self._released and self._guard.is_valid()

    def check(self) -> None:
        """Raise :class:`fenced.LockLost` unless :meth:`is_valid`."""
        if self._released:
            raise LockLost(f"lock {self.name!r} was released", code="lock_lost", reason="released")
        if not self._guard.is_valid():
            reason = self.lost_reason or "deadline_passed"
            raise LockLost(
                f"lock {self.name!r} (token {self.token}) may be lost: {reason}; stop writing under it",
                code="lock_lost",
                reason=reason,
            )

    def on_lost(self, callback: Callable[["AsyncLock"], None]) -> None:
        """Call ``callback(lock)`` on the event loop when the lock is lost."""
        if self.lost.is_set():
            callback(self)
        else:
            self._callbacks.append(callback)

    async def release(self) -> None:
        """Release the lock and revoke its lease. Idempotent."""
        if self._released:
            return
        self._released = True
        self._client._held.discard(self)
        try:
            await _await(self._guard.release())
        finally:
            if self._session is not None:
                self._client._sessions.checkin(self._session)

    async def __aenter__(self) -> "AsyncLock":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.release()

    def __repr__(self) -> str:
        return (
            f"<fenced.{type(self).__name__} {self.name!r} mode={self.mode} token={self.token} "
            f"lease={self.lease} holds={self.holds} valid={self.is_valid()}>"
        )


class AsyncPermit(AsyncLock):
    """:class:`fenced.Permit` for asyncio."""

    @property
    def semaphore(self) -> str:
        return self._guard.lock

    @property
    def slot(self) -> int:
        s = self._guard.slot
        assert s is not None, "a permit's grant carries its slot"
        return s


class AsyncHold:
    """What ``lock.hold()`` returns: one more re-entrant hold for a block."""

    def __init__(self, lock: AsyncLock) -> None:
        self._lock = lock
        self._held = False

    async def __aenter__(self) -> int:
        n = await self._lock.reacquire()
        self._held = True
        return n

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._held:
            self._held = False
            await self._lock.release_hold()


class AsyncLockRequest:
    """What ``client.lock(...)`` and ``client.permit(...)`` return:
    ``async with`` acquires and releases."""

    def __init__(
        self,
        client: "AsyncClient",
        name: str,
        ttl: float,
        wait: float,
        value: str,
        shared: bool = False,
        permit: bool = False,
    ) -> None:
        self._client, self._name, self._ttl, self._wait, self._value = client, name, ttl, wait, value
        self._shared, self._permit = shared, permit
        self._lock: Optional[AsyncLock] = None

    async def __aenter__(self) -> AsyncLock:
        self._lock = await self._client._acquire(
            self._name, self._ttl, self._wait, self._value, shared=self._shared, permit=self._permit
        )
        return self._lock

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._lock is not None:
            await self._lock.release()


class AsyncClient:
    """:class:`fenced.Client` for asyncio: the same arguments and methods,
    as coroutines."""

    def __init__(
        self,
        endpoints: Union[str, Sequence[str]],
        *,
        tls: Optional[TLS] = None,
        bearer_token: Optional[str] = None,
        request_timeout: float = 2.0,
        call_timeout: float = 10.0,
    ) -> None:
        eps = check_endpoints(endpoints)
        t = check_tls(tls)
        self._sessions = _Sessions(
            endpoints=eps,
            bearer_token=check_token(bearer_token),
            ca=t.ca if t else None,
            cert=t.cert if t else None,
            key=t.key if t else None,
            request_timeout=check_seconds("request_timeout", request_timeout, zero_ok=False),
            call_timeout=check_seconds("call_timeout", call_timeout, zero_ok=False),
        )
        self._native = self._sessions.first
        self._closed = False
        self._held: "weakref.WeakSet[AsyncLock]" = weakref.WeakSet()
        self._mu = threading.Lock()

    @property
    def client_id(self) -> str:
        return self._native.client_id

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosed("this fenced.AsyncClient is closed; create a new one", code="closed")

    async def _acquire(
        self, name: str, ttl: float, wait: float, value: str, *, shared: bool = False, permit: bool = False
    ) -> AsyncLock:
        self._check_open()
        session = self._sessions.checkout()
        try:
            guard = await _await(session.acquire(name, ttl, wait, value, shared=shared, permit=permit))
        except BaseException:
            self._sessions.checkin(session)
            raise
        lock = AsyncPermit(self, guard) if guard.mode == "permit" else AsyncLock(self, guard)
        lock._session = session
        if self._closed:
            await lock.release()
            self._check_open()
        self._held.add(lock)
        return lock

    def lock(
        self, name: str, *, ttl: float = 10.0, wait: float = 0.0, value: str = "", shared: bool = False
    ) -> AsyncLockRequest:
        """``async with client.lock("orders", ttl=10, wait=5) as lock:``."""
        self._check_open()
        return AsyncLockRequest(
            self,
            check_name("lock name", name),
            check_seconds("ttl", ttl, zero_ok=False),
            check_seconds("wait", wait, zero_ok=True),
            check_str("value", value),
            shared=check_flag("shared", shared),
        )

    async def acquire(
        self, name: str, *, ttl: float = 10.0, wait: float = 0.0, value: str = "", shared: bool = False
    ) -> AsyncLock:
        r = self.lock(name, ttl=ttl, wait=wait, value=value, shared=shared)
        return await self._acquire(r._name, r._ttl, r._wait, r._value, shared=r._shared)

    def permit(self, semaphore: str, *, ttl: float = 10.0, wait: float = 0.0) -> AsyncLockRequest:
        """``async with client.permit("pool", ttl=10, wait=5) as permit:``."""
        self._check_open()
        return AsyncLockRequest(
            self,
            check_name("semaphore name", semaphore),
            check_seconds("ttl", ttl, zero_ok=False),
            check_seconds("wait", wait, zero_ok=True),
            "",
            permit=True,
        )

    async def acquire_permit(self, semaphore: str, *, ttl: float = 10.0, wait: float = 0.0) -> AsyncPermit:
        r = self.permit(semaphore, ttl=ttl, wait=wait)
        p = await self._acquire(r._name, r._ttl, r._wait, "", permit=True)
        assert isinstance(p, AsyncPermit)
        return p

    async def set_permits(self, semaphore: str, permits: int) -> SemPermits:
        self._check_open()
        name = check_name("semaphore name", semaphore)
        return parse_sem_permits(await _await(self._native.sem_permits(name, check_permits(permits))))

    async def status(self, lock: str) -> LockStatus:
        self._check_open()
        return parse_status(await _await(self._native.status(check_name("lock name", lock))))

    async def claim(self, name: str, owner: str) -> Claim:
        self._check_open()
        return parse_claim(await _await(self._native.claim(check_name("claim name", name), check_str("owner", owner))))

    async def cluster_status(self) -> List[Dict[str, Any]]:
        self._check_open()
        result: List[Dict[str, Any]] = json.loads(await _await(self._native.cluster_status()))
        return result

    async def campaign(self, election: str, value: str, *, ttl: float = 10.0, wait: float = 30.0) -> AsyncLock:
        return await self.acquire(election_lock(election), ttl=ttl, wait=wait, value=check_str("value", value))

    async def observe(self, election: str) -> Optional[Holder]:
        return (await self.status(election_lock(election))).holder

    async def resign(self, leadership: AsyncLock) -> None:
        if not isinstance(leadership, AsyncLock):
            raise TypeError("resign() takes the AsyncLock that campaign() returned")
        await leadership.release()

    async def close(self) -> None:
        """Release every lock still held; later calls raise ClientClosed."""
        self._closed = True
        for lock in list(self._held):
            try:
                await lock.release()
            except Exception:
                pass

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class AsyncStore:
    """:class:`fenced.Store` for asyncio."""

    def __init__(
        self,
        address: str,
        *,
        tls: Optional[TLS] = None,
        bearer_token: Optional[str] = None,
        timeout: float = 10.0,
    ) -> None:
        addr = check_endpoints([check_str("address", address)])[0]
        t = check_tls(tls)
        self._native = _native.NativeStore(
            addr,
            bearer_token=check_token(bearer_token),
            ca=t.ca if t else None,
            cert=t.cert if t else None,
            key=t.key if t else None,
            timeout=check_seconds("timeout", timeout, zero_ok=False),
        )
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosed("this fenced.AsyncStore is closed; create a new one", code="closed")

    async def put(
        self,
        key: str,
        value: Value,
        *,
        lock: Optional[AsyncLock] = None,
        token: Optional[int] = None,
        signed_token: Optional[str] = None,
        if_version: Optional[int] = None,
    ) -> Written:
        self._check_open()
        a = _write_args(key, lock, token, signed_token, if_version)
        d = await _await(self._native.put(a[0], as_bytes(value), a[1], a[2], a[3]))
        return Written(version=d["version"], token=d["token"])

    async def get(self, key: str, *, lock: Optional[AsyncLock] = None) -> Optional[Object]:
        self._check_open()
        token, signed = _read_fence(lock)
        r = await _await(self._native.get(check_name("key", key), token, signed))
        return None if r is None else Object(value=r[0], version=r[1], token=r[2])

    async def max_token(self, key: str) -> int:
        self._check_open()
        return int(await _await(self._native.max_token(check_name("key", key))))

    async def close(self) -> None:
        self._closed = True
