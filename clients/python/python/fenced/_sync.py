"""The blocking API: :class:`Client`, :class:`Lock`, :class:`Store`.

Every call blocks with the GIL released, so other Python threads run while
one waits for the cluster; Ctrl-C during a wait cancels it (an interrupted
acquire revokes its lease before ``KeyboardInterrupt`` propagates).
"""

from __future__ import annotations

import threading
import weakref
from types import TracebackType
from typing import Any, Callable, Dict, List, Optional, Sequence, Type, Union

from . import _native
from ._common import (
    TLS,
    Claim,
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
from .errors import ClientClosed, LockLost

#: Locks held or being acquired at once through one native client (one
#: deduplication session). The cluster remembers each session's last 64
#: answers; a retry (after a lost reply) of an older request is refused as
#: ``request_too_old`` with an unknown outcome. Each held lock has at most
#: two requests in flight (its acquire or keepalive, and a release), so 16
#: per session keeps every retry inside the window.
SESSION_LOCKS = 16


class _Sessions:
    """Native clients (sessions) sharing one configuration; a lock is
    acquired on one with fewer than :data:`SESSION_LOCKS` locks, and keeps
    it until released."""

    def __init__(self, **config: Any) -> None:
        self._config = config
        self._mu = threading.Lock()
        first = _native.NativeClient(**config)
        self._load: Dict[_native.NativeClient, int] = {first: 0}
        self.first = first

    def checkout(self) -> _native.NativeClient:
        with self._mu:
            for c, n in self._load.items():
                if n < SESSION_LOCKS:
                    self._load[c] = n + 1
                    return c
            c = _native.NativeClient(**self._config)
            self._load[c] = 1
            return c

    def checkin(self, c: _native.NativeClient) -> None:
        with self._mu:
            if c in self._load:
                self._load[c] = max(0, self._load[c] - 1)


class Lock:
    """A held lock. Use it as a context manager (leaving releases it), or
    call :meth:`release`.

    The lease is kept alive on the Rust runtime. :attr:`lost` is set, and
    the :meth:`on_lost` callbacks run, the moment the client learns or
    assumes that the lock is gone: the cluster says so, a keepalive is
    refused, or no keepalive was confirmed before the local validity
    deadline ``t_send + ttl·(1−ρ) − margin``. Writes must still carry
    :attr:`token`: a paused process notices nothing until it runs again.
    """

    def __init__(self, client: "Client", guard: _native.NativeGuard) -> None:
        self._client = client
        self._guard = guard
        self._released = False
        self._session: Optional[_native.NativeClient] = None
        self._lost_reason: Optional[str] = None
        self._callbacks: List[Callable[["Lock"], None]] = []
        self._mu = threading.Lock()
        #: Set when the lock is lost for good (not by its own release).
        self.lost = threading.Event()
        # A weak reference: the runtime task must not keep an abandoned Lock
        # (and so its keepalive) alive.
        ref = weakref.ref(self)

        def notify(reason: str) -> None:
            lock = ref()
            if lock is not None:
                lock._final_loss(reason)

        guard.on_final_loss(notify)

    def _final_loss(self, reason: str) -> None:
        # Runs on a runtime thread, with the GIL.
        with self._mu:
            if self._released or self.lost.is_set():
                return
            self._lost_reason = reason
            self.lost.set()
            callbacks = list(self._callbacks)
        for cb in callbacks:
            try:
                cb(self)
            except Exception:  # a callback's bug must not kill the runtime thread
                import traceback

                traceback.print_exc()

    @property
    def name(self) -> str:
        return self._guard.lock

    @property
    def token(self) -> int:
        """The fencing token: attach it to every write to the resource."""
        return self._guard.token

    @property
    def signed_token(self) -> str:
        """The token signed by the cluster, verifiable by a resource."""
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
        """``"exclusive"``, ``"shared"`` or ``"permit"``. Only an exclusive
        grant's token writes to a fenced store; any grant may do a fenced
        read (``store.get(key, lock=lock)``)."""
        return self._guard.mode

    @property
    def holds(self) -> int:
        """This lease's holds of the lock, as the cluster last answered: 1
        after the acquire, one more per :meth:`reacquire`."""
        return self._guard.holds

    def reacquire(self) -> int:
        """Take one more hold on the same lease (re-entrance): the cluster
        answers the same grant, same token, and the hold count, which this
        returns. Give it back with :meth:`release_hold`; :meth:`release`
        ends every hold. A permit is not re-entrant (InvalidArgument)."""
        if self._released:
            raise LockLost(f"lock {self.name!r} was released", code="lock_lost", reason="released")
        return int(self._guard.reacquire().wait())

    def release_hold(self) -> int:
        """Give back one hold; returns the holds left. Giving back the last
        one is :meth:`release` (the lock is freed and the lease revoked)."""
        if self._released:
            return 0
        if self.holds <= 1:
            self.release()
            return 0
        return int(self._guard.release_hold().wait())

    def hold(self) -> "Hold":
        """``with lock.hold() as holds:``: one more hold for the block
        (:meth:`reacquire` on entry, :meth:`release_hold` on exit)."""
        return Hold(self)

    @property
    def lost_reason(self) -> Optional[str]:
        """Why the lock is (presumed) lost, or ``None``."""
        r = self._guard.lost_reason()
        return self._lost_reason or (r[0] if r else None)

    def is_valid(self) -> bool:
        """True while no loss is known and the local deadline has not
        passed. A belief only: the resource must check the token."""
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

    def on_lost(self, callback: Callable[["Lock"], None]) -> None:
        """Call ``callback(lock)`` once when the lock is lost (at once if it
        already is). It runs on a runtime thread: keep it short."""
        with self._mu:
            fire = self.lost.is_set()
            if not fire:
                self._callbacks.append(callback)
        if fire:
            callback(self)

    def release(self) -> None:
        """Release the lock and revoke its lease. Idempotent."""
        with self._mu:
            if self._released:
                return
            self._released = True
        self._client._forget(self)
        try:
            self._guard.release().wait()
        finally:
            if self._session is not None:
                self._client._sessions.checkin(self._session)

    def __enter__(self) -> "Lock":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return (
            f"<fenced.{type(self).__name__} {self.name!r} mode={self.mode} token={self.token} "
            f"lease={self.lease} holds={self.holds} valid={self.is_valid()}>"
        )


class Permit(Lock):
    """A held permit of a counting semaphore: a :class:`Lock` whose
    :attr:`name` is the semaphore's and which has a :attr:`slot`, the lowest
    slot nobody else held when it was granted. Its token fences the slot: a
    fenced store accepts it for keys guarded by the lock ``SEMAPHORE#SLOT``
    (docs/primitives.md). Loss is reported as for a lock."""

    @property
    def semaphore(self) -> str:
        return self._guard.lock

    @property
    def slot(self) -> int:
        s = self._guard.slot
        assert s is not None, "a permit's grant carries its slot"
        return s


class Hold:
    """What ``lock.hold()`` returns: one more re-entrant hold for a block."""

    def __init__(self, lock: Lock) -> None:
        self._lock = lock
        self._held = False

    def __enter__(self) -> int:
        n = self._lock.reacquire()
        self._held = True
        return n

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._held:
            self._held = False
            self._lock.release_hold()


class LockRequest:
    """What ``client.lock(...)`` and ``client.permit(...)`` return: acquires
    on ``__enter__``, releases on ``__exit__`` (also when the block raises)."""

    def __init__(
        self,
        client: "Client",
        name: str,
        ttl: float,
        wait: float,
        value: str,
        shared: bool = False,
        permit: bool = False,
    ) -> None:
        self._client, self._name, self._ttl, self._wait, self._value = client, name, ttl, wait, value
        self._shared, self._permit = shared, permit
        self._lock: Optional[Lock] = None

    def __enter__(self) -> Lock:
        self._lock = self._client._acquire(
            self._name, self._ttl, self._wait, self._value, shared=self._shared, permit=self._permit
        )
        return self._lock

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._lock is not None:
            self._lock.release()


class Client:
    """A handle on a fenced cluster: the Rust ``fenced_client::Client``.

    ``endpoints`` are the replicas' ``host:port`` (a list, or one
    comma-separated str); calls fail over between them. Thread-safe.
    """

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
        self._held: "weakref.WeakSet[Lock]" = weakref.WeakSet()
        self._mu = threading.Lock()

    @property
    def client_id(self) -> str:
        return self._native.client_id

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosed("this fenced.Client is closed; create a new one", code="closed")

    def _forget(self, lock: Lock) -> None:
        with self._mu:
            self._held.discard(lock)

    def _acquire(
        self, name: str, ttl: float, wait: float, value: str, *, shared: bool = False, permit: bool = False
    ) -> Lock:
        self._check_open()
        session = self._sessions.checkout()
        try:
            guard = session.acquire(name, ttl, wait, value, shared=shared, permit=permit).wait()
        except BaseException:
            self._sessions.checkin(session)
            raise
        lock = Permit(self, guard) if guard.mode == "permit" else Lock(self, guard)
        lock._session = session
        with self._mu:
            closed = self._closed
            if not closed:
                self._held.add(lock)
        if closed:
            lock.release()
            self._check_open()
        return lock

    def lock(
        self, name: str, *, ttl: float = 10.0, wait: float = 0.0, value: str = "", shared: bool = False
    ) -> LockRequest:
        """``with client.lock("orders", ttl=10, wait=5) as lock:``.

        ``ttl``: the lease's time to live, in seconds (kept alive while
        held). ``wait``: how long to queue (FIFO) for the lock; 0 tries once
        and raises :class:`fenced.Busy` if it is held. After ``wait``:
        :class:`fenced.WaitTimeout`. ``shared=True``: hold it with other
        shared holders, never with an exclusive one (a queued exclusive
        request blocks later shared ones); a shared token cannot write.
        """
        self._check_open()
        return LockRequest(
            self,
            check_name("lock name", name),
            check_seconds("ttl", ttl, zero_ok=False),
            check_seconds("wait", wait, zero_ok=True),
            check_str("value", value),
            shared=check_flag("shared", shared),
        )

    def acquire(
        self, name: str, *, ttl: float = 10.0, wait: float = 0.0, value: str = "", shared: bool = False
    ) -> Lock:
        """Acquire and return the :class:`Lock` (release it yourself)."""
        r = self.lock(name, ttl=ttl, wait=wait, value=value, shared=shared)
        return self._acquire(r._name, r._ttl, r._wait, r._value, shared=r._shared)

    def permit(self, semaphore: str, *, ttl: float = 10.0, wait: float = 0.0) -> LockRequest:
        """``with client.permit("pool", ttl=10, wait=5) as permit:``: one
        permit of the semaphore (create it with :meth:`set_permits`), a
        :class:`Permit`. One permit per lease: each acquire has its own."""
        self._check_open()
        return LockRequest(
            self,
            check_name("semaphore name", semaphore),
            check_seconds("ttl", ttl, zero_ok=False),
            check_seconds("wait", wait, zero_ok=True),
            "",
            permit=True,
        )

    def acquire_permit(self, semaphore: str, *, ttl: float = 10.0, wait: float = 0.0) -> Permit:
        """Take and return a :class:`Permit` (release it yourself)."""
        r = self.permit(semaphore, ttl=ttl, wait=wait)
        p = self._acquire(r._name, r._ttl, r._wait, "", permit=True)
        assert isinstance(p, Permit)
        return p

    def set_permits(self, semaphore: str, permits: int) -> SemPermits:
        """Create the semaphore with ``permits`` permits, or change its count
        (a log entry). Lowering it revokes nobody: no permit is granted until
        fewer than the new count are held. 0 deletes an unused semaphore."""
        self._check_open()
        name = check_name("semaphore name", semaphore)
        return parse_sem_permits(self._native.sem_permits(name, check_permits(permits)).wait())

    def status(self, lock: str) -> LockStatus:
        """The lock's linearizable status: holder and queued leases."""
        self._check_open()
        return parse_status(self._native.status(check_name("lock name", lock)).wait())

    def claim(self, name: str, owner: str) -> Claim:
        """Create-if-absent: the first caller for ``name`` wins; later ones
        learn the winner (``won`` False)."""
        self._check_open()
        return parse_claim(self._native.claim(check_name("claim name", name), check_str("owner", owner)).wait())

    def cluster_status(self) -> List[Dict[str, Any]]:
        """Each replica's own view: ``{"endpoint", "status"}`` or
        ``{"endpoint", "error"}``."""
        import json

        self._check_open()
        result: List[Dict[str, Any]] = json.loads(self._native.cluster_status().wait())
        return result

    # -- leader election: locks named "election:<name>" --------------------------

    def campaign(self, election: str, value: str, *, ttl: float = 10.0, wait: float = 30.0) -> Lock:
        """Become the leader of ``election`` (queue up to ``wait`` s), with
        ``value`` as the proclamation. Returns the leadership as a Lock:
        its token fences the leader's writes; its loss ends the term."""
        return self.acquire(election_lock(election), ttl=ttl, wait=wait, value=check_str("value", value))

    def observe(self, election: str) -> Optional[Holder]:
        """The current leader (its value and token), or ``None``."""
        return self.status(election_lock(election)).holder

    def resign(self, leadership: Lock) -> None:
        """Give up leadership (releases the campaign's lock)."""
        if not isinstance(leadership, Lock):
            raise TypeError("resign() takes the Lock that campaign() returned")
        leadership.release()

    def close(self) -> None:
        """Release every lock this client still holds; later calls raise
        :class:`fenced.ClientClosed`."""
        with self._mu:
            self._closed = True
            held = list(self._held)
        for lock in held:
            try:
                lock.release()
            except Exception:
                pass

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


Value = Union[bytes, bytearray, memoryview, str]


class Store:
    """A client of one fenced store (``fenced store serve``).

    Writes carry the lock's fencing token and signed token; the store
    refuses a stale one with :class:`fenced.StaleToken` (with the store's
    ``presented`` and ``current`` numbers) and a forged or foreign one with
    :class:`fenced.BadToken`. Neither changes anything.
    """

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

    @property
    def address(self) -> str:
        return self._native.address

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosed("this fenced.Store is closed; create a new one", code="closed")

    def put(
        self,
        key: str,
        value: Value,
        *,
        lock: Optional[Lock] = None,
        token: Optional[int] = None,
        signed_token: Optional[str] = None,
        if_version: Optional[int] = None,
    ) -> Written:
        """Write ``value`` under ``key``, fenced by ``lock`` (or an explicit
        ``token`` and ``signed_token``). With ``if_version``: only if the
        key's live version is that (0: absent), else
        :class:`fenced.VersionMismatch`."""
        self._check_open()
        args = _write_args(key, lock, token, signed_token, if_version)
        d = self._native.put(args[0], as_bytes(value), args[1], args[2], args[3]).wait()
        return Written(version=d["version"], token=d["token"])

    def delete(
        self, key: str, *, lock: Optional[Lock] = None, token: Optional[int] = None, signed_token: Optional[str] = None
    ) -> Written:
        """Delete ``key``, fenced; the store keeps its highest token."""
        self._check_open()
        args = _write_args(key, lock, token, signed_token, None)
        d = self._native.delete(args[0], args[1], args[2]).wait()
        return Written(version=d["version"], token=d["token"])

    def get(self, key: str, *, lock: Optional[Lock] = None) -> Optional[Object]:
        """The object under ``key``, or ``None``. With ``lock`` (a grant of
        any mode of the key's guarding lock), a fenced read: refused with
        :class:`fenced.StaleToken` if a writer was granted after it (its
        hold has ended: it would read on a stale belief)."""
        self._check_open()
        token, signed = _read_fence(lock)
        r = self._native.get(check_name("key", key), token, signed).wait()
        return None if r is None else Object(value=r[0], version=r[1], token=r[2])

    def max_token(self, key: str) -> int:
        """The highest token the store has accepted for ``key``."""
        self._check_open()
        return int(self._native.max_token(check_name("key", key)).wait())

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _read_fence(lock: Any) -> "tuple[Optional[int], Optional[str]]":
    if lock is None:
        return None, None
    guard = getattr(lock, "_guard", None)
    if not isinstance(guard, _native.NativeGuard):
        raise TypeError(f"lock must be a fenced.Lock or fenced.AsyncLock, not {type(lock).__name__}")
    return guard.token, guard.signed_token


def _write_args(
    key: str, lock: Any, token: Optional[int], signed_token: Optional[str], if_version: Optional[int]
) -> "tuple[str, int, str, Optional[int]]":
    check_name("key", key)
    if lock is not None:
        if token is not None or signed_token is not None:
            raise TypeError("pass lock= or token=/signed_token=, not both")
        guard = getattr(lock, "_guard", None)
        if not isinstance(guard, _native.NativeGuard):
            raise TypeError(f"lock must be a fenced.Lock or fenced.AsyncLock, not {type(lock).__name__}")
        token, signed_token = guard.token, guard.signed_token
    if token is None:
        raise TypeError("a fenced write needs lock= (or token= and signed_token=)")
    if isinstance(token, bool) or not isinstance(token, int):
        raise TypeError("token must be an int")
    if token < 0 or token >= 2**64:
        raise ValueError("token must fit in 64 bits")
    if signed_token is None:
        signed_token = ""
    check_str("signed_token", signed_token)
    if if_version is not None and (isinstance(if_version, bool) or not isinstance(if_version, int) or if_version < 0):
        raise TypeError("if_version must be a non-negative int or None")
    return key, token, signed_token, if_version
