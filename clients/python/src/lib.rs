//! `fenced._native`: the Python package's bindings of `fenced-client` and
//! the fenced store client.
//!
//! Nothing of the protocol lives here. Every operation is one call into the
//! Rust client, run as a task on the module's one tokio runtime, and
//! returned to Python as a [`Pending`]: a blocking caller waits on it with
//! the GIL released (checking for signals every 50 ms), an asyncio caller
//! registers a done-callback that hands the result to its event loop. Keepalives,
//! the watch stream and the local deadline are the `Guard`'s own tasks on
//! the same runtime: no Python thread per lock.
//!
//! Errors become the exception classes of `fenced.errors` (defined in
//! Python, so that they are ordinary, picklable classes), always with the
//! server's reason text.

use fenced_client::{AcquireOptions, Client, ClientConfig, ClientError, Guard, LostReason, StoreClient, StoreError};
use fenced_core::toolbox::clock::Mono;
use fenced_io::clock::now;
use fenced_io::clock::SystemClock;
use fenced_io::http::HttpClient;
use fenced_io::tls::{client_config, TlsTransport};
use fenced_io::transport::{TcpTransport, Transport};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long an abandoned operation's clean-up (revoking an acquire's lease,
/// releasing a grant that won the race) is waited for: longer than the
/// client's call timeout, which bounds each.
const CLEANUP_WAIT: Duration = Duration::from_secs(15);

/// How often a blocking wait lets Python run its signal handlers (Ctrl-C).
const SIGNAL_CHECK_EVERY: Duration = Duration::from_millis(50);

/// The module's runtime: two worker threads are plenty for I/O-bound
/// keepalives; it lives as long as the process.
fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fenced-rt")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| PyRuntimeError::new_err(format!("cannot start the fenced runtime: {e}")))
}

/// False once the interpreter has begun to exit. A runtime thread that
/// attached to an exiting interpreter would be stopped inside Rust code and
/// abort the process (seen as `SIGABRT` after a script's last line), so
/// callbacks from runtime threads go through [`with_python`], and the
/// `atexit` hook [`interpreter_exiting`] waits for those in flight.
static PYTHON_ALIVE: RwLock<bool> = RwLock::new(true);

/// Run `f` attached to the interpreter, from a runtime thread, unless the
/// interpreter is exiting (then `f` is dropped: nobody is left to call).
fn with_python(f: impl FnOnce(Python<'_>)) {
    let alive = PYTHON_ALIVE.read().unwrap_or_else(|e| e.into_inner());
    if *alive {
        Python::attach(f);
    }
}

/// Registered with `atexit`: no callback starts after this returns. The GIL
/// is released while waiting, so the callbacks in flight can finish.
#[pyfunction]
fn interpreter_exiting(py: Python<'_>) {
    py.detach(|| *PYTHON_ALIVE.write().unwrap_or_else(|e| e.into_inner()) = false);
}

/// Build an exception of `fenced.errors.<class>` with `message` and
/// attributes.
fn py_error(py: Python<'_>, class: &str, message: &str, attrs: &[(&str, Py<PyAny>)]) -> PyErr {
    let make = || -> PyResult<PyErr> {
        let cls = py.import("fenced.errors")?.getattr(class)?;
        let kwargs = PyDict::new(py);
        for (k, v) in attrs {
            kwargs.set_item(*k, v.bind(py))?;
        }
        let exc = cls.call((message,), Some(&kwargs))?;
        Ok(PyErr::from_value(exc))
    };
    make().unwrap_or_else(|e| e)
}

fn obj<'py, T: IntoPyObject<'py>>(py: Python<'py>, v: T) -> Py<PyAny> {
    use pyo3::IntoPyObjectExt;
    v.into_py_any(py).unwrap_or_else(|_| py.None())
}

/// The `retry after N ms` of a `rate_limited` refusal's message (the
/// server puts the number there and in `Retry-After`, which the client does
/// not keep).
fn retry_after_secs(message: &str) -> Option<f64> {
    let rest = &message[message.find("retry after ")? + "retry after ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<u64>().ok().map(|ms| ms as f64 / 1000.0)
}

fn client_error(py: Python<'_>, e: &ClientError) -> PyErr {
    match e {
        ClientError::Api { status, body } => {
            let mut attrs = vec![
                ("code", obj(py, body.code.as_str())),
                ("status", obj(py, *status)),
                ("retryable", obj(py, body.retry)),
            ];
            let class = match (body.code.as_str(), *status) {
                ("busy", _) => {
                    attrs.push(("holder_lease", obj(py, body.holder)));
                    attrs.push(("holder_token", obj(py, body.token)));
                    "Busy"
                }
                ("wait_timeout", _) => "WaitTimeout",
                ("not_holder", _) => "NotHolder",
                ("rate_limited", _) | (_, 429) => {
                    attrs.push(("retry_after", obj(py, retry_after_secs(&body.message).unwrap_or(1.0))));
                    "RateLimited"
                }
                (_, 401) => "Unauthorized",
                (_, 403) => "Forbidden",
                ("invalid_argument", _) | (_, 400) => "InvalidArgument",
                (_, 503) => "Unavailable",
                _ => "Refused",
            };
            py_error(py, class, &format!("{}: {}", body.code, body.message), &attrs)
        }
        ClientError::Unavailable(m) => py_error(
            py,
            "Unavailable",
            &e.to_string(),
            &[("code", obj(py, "unavailable")), ("detail", obj(py, m.as_str()))],
        ),
        ClientError::Protocol { .. } => py_error(py, "ProtocolError", &e.to_string(), &[("code", obj(py, "protocol"))]),
        ClientError::Invalid(_) => {
            py_error(py, "InvalidArgument", &e.to_string(), &[("code", obj(py, "invalid_argument"))])
        }
    }
}

fn store_error(py: Python<'_>, e: &StoreError) -> PyErr {
    let code = ("code", obj(py, e.code()));
    let msg = e.to_string();
    match e {
        StoreError::StaleToken { presented, current } => py_error(
            py,
            "StaleToken",
            &msg,
            &[code, ("presented", obj(py, *presented)), ("current", obj(py, *current))],
        ),
        StoreError::BadToken { .. } | StoreError::MissingToken { .. } => py_error(py, "BadToken", &msg, &[code]),
        StoreError::VersionMismatch { expected, current } => py_error(
            py,
            "VersionMismatch",
            &msg,
            &[code, ("expected", obj(py, *expected)), ("current", obj(py, *current))],
        ),
        StoreError::Unreachable(_) | StoreError::Unavailable { .. } | StoreError::RequestTooOld { .. } => {
            py_error(py, "Unavailable", &msg, &[code])
        }
        StoreError::Invalid(_) => py_error(py, "InvalidArgument", &msg, &[code]),
        // Another request under the same id: a caller error, nothing applied.
        StoreError::RequestIdReused { .. } => py_error(py, "InvalidArgument", &msg, &[code]),
        // An answer for another write: the outcome of ours is unknown.
        StoreError::WrongAnswer(_) => py_error(py, "Unavailable", &msg, &[code]),
        StoreError::Http { status, .. } => {
            let class = match *status {
                401 => "Unauthorized",
                403 => "Forbidden",
                429 => "RateLimited",
                400 => "InvalidArgument",
                _ => "Refused",
            };
            let mut attrs = vec![code, ("status", obj(py, *status))];
            if *status == 429 {
                attrs.push(("retry_after", obj(py, 1.0)));
            }
            py_error(py, class, &msg, &attrs)
        }
        StoreError::BadResponse(_) => py_error(py, "ProtocolError", &msg, &[code]),
    }
}

/// What a finished task hands back: turned into a Python value (or
/// exception) once the GIL is held.
type Outcome = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

#[derive(Default)]
struct Slot {
    outcome: Option<Outcome>,
    done: bool,
    /// Consumed: `result()` was called (a second call is an error).
    taken: bool,
    callbacks: Vec<Py<PyAny>>,
}

struct Shared {
    slot: Mutex<Slot>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One operation running on the runtime.
#[pyclass(module = "fenced._native")]
struct Pending {
    shared: Arc<Shared>,
    cancel: Mutex<Option<oneshot::Sender<()>>>,
}

/// Start `work` on the runtime. It gets a cancel receiver; operations that
/// must clean up on cancellation (acquire) watch it, the others ignore it
/// (they are short and harmless to finish).
fn spawn<F, Fut>(work: F) -> PyResult<Pending>
where
    F: FnOnce(oneshot::Receiver<()>) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let shared = Arc::new(Shared { slot: Mutex::new(Slot::default()), cond: Condvar::new() });
    let (tx, rx) = oneshot::channel();
    let fut = work(rx);
    let s = shared.clone();
    runtime()?.spawn(async move {
        let outcome = fut.await;
        let callbacks = {
            let mut slot = s.lock();
            slot.outcome = Some(outcome);
            slot.done = true;
            std::mem::take(&mut slot.callbacks)
        };
        s.cond.notify_all();
        if !callbacks.is_empty() {
            with_python(|py| {
                for cb in callbacks {
                    if let Err(e) = cb.call0(py) {
                        e.write_unraisable(py, None);
                    }
                }
            });
        }
    });
    Ok(Pending { shared, cancel: Mutex::new(Some(tx)) })
}

impl Pending {
    fn send_cancel(&self) {
        if let Some(tx) = self.cancel.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(());
        }
    }

    /// Cancel and wait (bounded) for the clean-up. A grant that won the
    /// race against the cancel is released here: the caller will never see it.
    fn abandon(&self, py: Python<'_>) {
        self.send_cancel();
        // The acquire's revoke is bounded by the client's call timeout.
        if !self.wait_done(py, now().plus(CLEANUP_WAIT)) {
            return;
        }
        let Ok(v) = self.result(py) else { return };
        if let Ok(g) = v.bind(py).cast::<NativeGuard>() {
            if let Ok(p) = g.get().release() {
                let _ = p.wait_done(py, now().plus(CLEANUP_WAIT));
            }
        }
    }

    /// Wait (GIL released) until done or `until`.
    fn wait_done(&self, py: Python<'_>, until: Mono) -> bool {
        let shared = self.shared.clone();
        py.detach(move || {
            let mut slot = shared.lock();
            while !slot.done {
                let left = until.since(now());
                if left.is_zero() {
                    return false;
                }
                slot = shared.cond.wait_timeout(slot, left).unwrap_or_else(|e| e.into_inner()).0;
            }
            true
        })
    }
}

#[pymethods]
impl Pending {
    /// Block until the operation finishes and return its result. The GIL is
    /// released while waiting; signals are checked every 50 ms. If a signal
    /// handler raises (Ctrl-C: `KeyboardInterrupt`), the operation is
    /// cancelled and its clean-up awaited (an acquire revokes its lease)
    /// before the exception propagates.
    fn wait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        loop {
            if self.wait_done(py, now().plus(SIGNAL_CHECK_EVERY)) {
                return self.result(py);
            }
            if let Err(interrupt) = py.check_signals() {
                self.abandon(py);
                return Err(interrupt);
            }
        }
    }

    /// Ask the operation to stop. An acquire revokes its lease; other
    /// operations run to completion.
    fn cancel(&self) {
        self.send_cancel();
    }

    fn done(&self) -> bool {
        self.shared.lock().done
    }

    /// The result; raises the operation's exception. Only once.
    fn result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let outcome = {
            let mut slot = self.shared.lock();
            if !slot.done {
                return Err(PyRuntimeError::new_err("the operation has not finished"));
            }
            if slot.taken {
                return Err(PyRuntimeError::new_err("the result was already taken"));
            }
            slot.taken = true;
            slot.outcome.take()
        };
        match outcome {
            Some(f) => f(py),
            None => Err(PyRuntimeError::new_err("the operation ended without a result")),
        }
    }

    /// Call `callback()` (no arguments) once the operation is done: at once
    /// if it is. Called on a runtime thread: hand over to your event loop
    /// with `loop.call_soon_threadsafe`.
    fn add_done_callback(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<()> {
        let call_now = {
            let mut slot = self.shared.lock();
            if slot.done {
                true
            } else {
                slot.callbacks.push(callback.clone_ref(py));
                false
            }
        };
        if call_now {
            callback.call0(py)?;
        }
        Ok(())
    }

    /// Wait up to `timeout` seconds for the operation to finish (GIL
    /// released); true if it did. Used after `cancel()` to await clean-up.
    fn join(&self, py: Python<'_>, timeout: f64) -> bool {
        let d = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::from_secs(3600));
        self.wait_done(py, now().plus(d))
    }
}

fn transport(ca: Option<String>, cert: Option<String>, key: Option<String>) -> Result<Arc<dyn Transport>, String> {
    let Some(ca) = ca else {
        if cert.is_some() || key.is_some() {
            return Err("tls: a client certificate needs a CA to verify the servers with (ca=...)".into());
        }
        return Ok(Arc::new(TcpTransport));
    };
    let identity = match (&cert, &key) {
        (Some(c), Some(k)) => Some((Path::new(c.as_str()), Path::new(k.as_str()))),
        (None, None) => None,
        _ => return Err("tls: cert and key go together".into()),
    };
    let config = client_config(Path::new(&ca), identity).map_err(|e| format!("cannot set up TLS: {e}"))?;
    Ok(Arc::new(TlsTransport::new(Arc::new(TcpTransport), None, Some(config))))
}

fn secs(name: &str, v: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| PyValueError::new_err(format!("{name} must be a finite number >= 0, got {v}")))
}

/// A handle on a fenced cluster (the Rust `fenced_client::Client`).
#[pyclass(module = "fenced._native", frozen)]
struct NativeClient {
    client: Client,
}

#[pymethods]
impl NativeClient {
    #[new]
    #[pyo3(signature = (endpoints, *, bearer_token=None, ca=None, cert=None, key=None, request_timeout=2.0, call_timeout=10.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        endpoints: Vec<String>,
        bearer_token: Option<String>,
        ca: Option<String>,
        cert: Option<String>,
        key: Option<String>,
        request_timeout: f64,
        call_timeout: f64,
    ) -> PyResult<Self> {
        let mut config = ClientConfig::new(endpoints);
        config.bearer_token = bearer_token;
        config.request_timeout = secs("request_timeout", request_timeout)?;
        config.call_timeout = secs("call_timeout", call_timeout)?;
        let t = transport(ca, cert, key).map_err(|m| py_error(py, "InvalidArgument", &m, &[]))?;
        // Building the HTTP client needs a runtime context (it may spawn).
        let _enter = runtime()?.enter();
        let client = Client::with_seams(config, t, Arc::new(SystemClock::new())).map_err(|e| client_error(py, &e))?;
        Ok(NativeClient { client })
    }

    /// This client's identity for deduplication (`c` + 16 hex digits).
    #[getter]
    fn client_id(&self) -> String {
        self.client.config().client_id.clone()
    }

    /// Grant a lease of `ttl` seconds, acquire `lock` on it (queueing up to
    /// `wait` seconds) and keep it alive. Result: a `NativeGuard`.
    /// Cancelling revokes the lease before the `Pending` completes.
    /// `shared`: take the lock shared (`AcquireOptions::shared`);
    /// `permit`: take a permit of the semaphore `lock` instead
    /// (`AcquireOptions::permit`). Both at once is refused here.
    #[pyo3(signature = (lock, ttl, wait, value, *, shared=false, permit=false))]
    #[allow(clippy::too_many_arguments)]
    fn acquire(
        &self,
        py: Python<'_>,
        lock: String,
        ttl: f64,
        wait: f64,
        value: String,
        shared: bool,
        permit: bool,
    ) -> PyResult<Pending> {
        let mut opts = AcquireOptions::new(secs("ttl", ttl)?).wait(secs("wait", wait)?);
        opts.value = value;
        opts = match (shared, permit) {
            (false, false) => opts,
            (true, false) => opts.shared(),
            (false, true) => opts.permit(),
            (true, true) => {
                return Err(py_error(
                    py,
                    "InvalidArgument",
                    "a permit is not taken shared: pass shared or permit, not both",
                    &[("code", obj(py, "invalid_argument"))],
                ))
            }
        };
        let client = self.client.clone();
        spawn(move |cancel| async move {
            let r = client
                .acquire_or_cancel(&lock, opts, async move {
                    let _ = cancel.await;
                })
                .await;
            Box::new(move |py: Python<'_>| -> PyResult<Py<PyAny>> {
                match r {
                    Ok(Some(guard)) => Ok(Py::new(py, NativeGuard::new(guard))?.into_any()),
                    Ok(None) => Err(py_error(
                        py,
                        "Cancelled",
                        "the acquire was cancelled; its lease was revoked",
                        &[("code", obj(py, "cancelled"))],
                    )),
                    Err(e) => Err(client_error(py, &e)),
                }
            }) as Outcome
        })
    }

    /// The lock's linearizable status, as JSON.
    fn status(&self, lock: String) -> PyResult<Pending> {
        let client = self.client.clone();
        spawn(move |_| async move { json_outcome(client.status(&lock).await) })
    }

    /// Create semaphore `name` with `permits` permits, or change its count
    /// (`Client::sem_permits`), as JSON `{name, permits, held}`.
    fn sem_permits(&self, name: String, permits: u32) -> PyResult<Pending> {
        let client = self.client.clone();
        spawn(move |_| async move { json_outcome(client.sem_permits(&name, permits).await) })
    }

    /// Create-if-absent of `name` for `owner`, as JSON.
    fn claim(&self, name: String, owner: String) -> PyResult<Pending> {
        let client = self.client.clone();
        spawn(move |_| async move { json_outcome(client.claim(&name, &owner, None).await) })
    }

    /// Every endpoint's own view of the cluster, as a JSON list: one
    /// `{"endpoint", "status"}` or `{"endpoint", "error"}` per replica.
    fn cluster_status(&self) -> PyResult<Pending> {
        let client = self.client.clone();
        spawn(move |_| async move {
            let mut out = Vec::new();
            for ep in client.config().endpoints.clone() {
                out.push(match client.cluster_status_of(&ep).await {
                    Ok(s) => serde_json::json!({ "endpoint": ep, "status": s }),
                    Err(e) => serde_json::json!({ "endpoint": ep, "error": e.to_string() }),
                });
            }
            let text = serde_json::Value::Array(out).to_string();
            Box::new(move |py: Python<'_>| Ok(obj(py, text))) as Outcome
        })
    }
}

fn json_outcome<T: serde::Serialize + Send + 'static>(r: Result<T, ClientError>) -> Outcome {
    Box::new(move |py: Python<'_>| match r {
        Ok(v) => serde_json::to_string(&v)
            .map(|s| obj(py, s))
            .map_err(|e| py_error(py, "ProtocolError", &e.to_string(), &[])),
        Err(e) => Err(client_error(py, &e)),
    })
}

/// A held lock (the Rust `Guard`). Its keepalive, watch and deadline run
/// on the runtime. Released explicitly (`release()`); if it is dropped
/// without, its background tasks stop and the lease expires after its TTL.
#[pyclass(module = "fenced._native", frozen)]
struct NativeGuard {
    guard: Arc<tokio::sync::RwLock<Option<Guard>>>,
    lock: String,
    token: u64,
    signed: String,
    lease: u64,
    ttl: f64,
    value: String,
    /// `exclusive`, `shared` or `permit` (the grant's kind).
    mode: String,
    /// A permit's slot.
    slot: Option<u32>,
    /// This lease's holds of the lock, as the cluster last answered them
    /// (re-entrance: `reacquire` and `release_hold`).
    holds: Arc<std::sync::atomic::AtomicU32>,
    lost: tokio::sync::watch::Receiver<Option<LostReason>>,
}

impl NativeGuard {
    fn new(g: Guard) -> Self {
        NativeGuard {
            mode: g.grant().mode.clone().unwrap_or_else(|| "exclusive".into()),
            slot: g.grant().slot,
            holds: Arc::new(std::sync::atomic::AtomicU32::new(g.grant().holds.unwrap_or(1))),
            lock: g.lock().to_string(),
            token: g.token(),
            signed: g.signed_token().to_string(),
            lease: g.lease(),
            ttl: g.ttl().as_secs_f64(),
            value: g.grant().value.clone(),
            lost: g.lost_signal(),
            guard: Arc::new(tokio::sync::RwLock::new(Some(g))),
        }
    }
}

/// A hold count from the cluster, remembered by the guard and handed to Python.
fn hold_outcome(r: Result<u32, ClientError>, holds: &std::sync::atomic::AtomicU32) -> Outcome {
    if let Ok(n) = r {
        holds.store(n, std::sync::atomic::Ordering::SeqCst);
    }
    Box::new(move |py: Python<'_>| match r {
        Ok(n) => Ok(obj(py, n)),
        Err(e) => Err(client_error(py, &e)),
    })
}

/// `(reason, final)` as Python sees them.
fn reason_text(r: &LostReason) -> String {
    match r {
        LostReason::Cluster(c) => format!("cluster: {c}"),
        LostReason::LeaseGone => "lease_gone".into(),
        LostReason::DeadlinePassed => "deadline_passed".into(),
        LostReason::Released => "released".into(),
        LostReason::Paused(d) => format!("paused: {} ms", d.as_millis()),
    }
}

#[pymethods]
impl NativeGuard {
    #[getter]
    fn lock(&self) -> &str {
        &self.lock
    }
    #[getter]
    fn token(&self) -> u64 {
        self.token
    }
    #[getter]
    fn signed_token(&self) -> &str {
        &self.signed
    }
    #[getter]
    fn lease(&self) -> u64 {
        self.lease
    }
    #[getter]
    fn ttl(&self) -> f64 {
        self.ttl
    }
    #[getter]
    fn value(&self) -> &str {
        &self.value
    }
    #[getter]
    fn mode(&self) -> &str {
        &self.mode
    }
    #[getter]
    fn slot(&self) -> Option<u32> {
        self.slot
    }
    /// The holds this lease has of the lock, as the cluster last answered
    /// (1 after the acquire; 0 once the last hold was given back).
    #[getter]
    fn holds(&self) -> u32 {
        self.holds.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// One more re-entrant hold on the same lease (`Guard::reacquire`):
    /// the same grant and token; the result is the hold count.
    fn reacquire(&self) -> PyResult<Pending> {
        let (guard, holds) = (self.guard.clone(), self.holds.clone());
        spawn(move |_| async move {
            let r = match guard.read().await.as_ref() {
                Some(g) => g.reacquire().await,
                None => Err(ClientError::Invalid("the lock was released; acquire it again".into())),
            };
            hold_outcome(r, &holds)
        })
    }

    /// Give back one re-entrant hold (`Guard::release_hold`); the result
    /// is the holds left (0: the lock is released, the lease still kept).
    fn release_hold(&self) -> PyResult<Pending> {
        let (guard, holds) = (self.guard.clone(), self.holds.clone());
        spawn(move |_| async move {
            let r = match guard.read().await.as_ref() {
                Some(g) => g.release_hold().await,
                None => Err(ClientError::Invalid("the lock was released; acquire it again".into())),
            };
            hold_outcome(r, &holds)
        })
    }

    /// True while no loss is known and the local validity deadline has not
    /// passed. Only a belief: the resource must still check the token.
    fn is_valid(&self) -> bool {
        match self.guard.try_read() {
            Ok(g) => g.as_ref().is_some_and(Guard::is_valid),
            // Being released right now.
            Err(_) => false,
        }
    }

    /// `None`, or `(reason, final)`: why the lock is (presumed) lost. Only a
    /// pause is not final: the guard re-confirms with the cluster then.
    fn lost_reason(&self) -> Option<(String, bool)> {
        self.lost.borrow().as_ref().map(|r| (reason_text(r), r.is_final()))
    }

    /// Call `callback(reason)` once, on a runtime thread, when the lock is
    /// lost for good (any final reason, including its release).
    fn on_final_loss(&self, callback: Py<PyAny>) -> PyResult<()> {
        let mut rx = self.lost.clone();
        runtime()?.spawn(async move {
            let reason = match rx.wait_for(|r| r.as_ref().is_some_and(LostReason::is_final)).await {
                Ok(r) => r.as_ref().map(reason_text).unwrap_or_else(|| "lost".into()),
                // The guard is gone (dropped without release): its lease
                // is no longer kept alive.
                Err(_) => "dropped".into(),
            };
            with_python(|py| {
                if let Err(e) = callback.call1(py, (reason,)) {
                    e.write_unraisable(py, None);
                }
            });
        });
        Ok(())
    }

    /// Release the lock and revoke its lease. Releasing twice is a no-op.
    fn release(&self) -> PyResult<Pending> {
        let guard = self.guard.clone();
        spawn(move |_| async move {
            let g = guard.write().await.take();
            let r = match g {
                Some(g) => g.release().await,
                None => Ok(()),
            };
            Box::new(move |py: Python<'_>| match r {
                Ok(()) => Ok(py.None()),
                Err(e) => Err(client_error(py, &e)),
            }) as Outcome
        })
    }
}

/// A client of one fenced store (the Rust `StoreClient`).
#[pyclass(module = "fenced._native", frozen)]
struct NativeStore {
    store: StoreClient,
}

fn written(py: Python<'_>, ok: &fenced_client::WriteOk) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item("version", ok.version)?;
    d.set_item("token", ok.token)?;
    Ok(d.into_any().unbind())
}

fn write_outcome(r: Result<fenced_client::WriteOk, StoreError>) -> Outcome {
    Box::new(move |py: Python<'_>| match r {
        Ok(ok) => written(py, &ok),
        Err(e) => Err(store_error(py, &e)),
    })
}

#[pymethods]
impl NativeStore {
    #[new]
    #[pyo3(signature = (address, *, bearer_token=None, ca=None, cert=None, key=None, timeout=10.0))]
    fn new(
        py: Python<'_>,
        address: String,
        bearer_token: Option<String>,
        ca: Option<String>,
        cert: Option<String>,
        key: Option<String>,
        timeout: f64,
    ) -> PyResult<Self> {
        let t = transport(ca, cert, key).map_err(|m| py_error(py, "InvalidArgument", &m, &[]))?;
        let _enter = runtime()?.enter();
        let mut store = StoreClient::new(HttpClient::new(t), address).with_timeout(secs("timeout", timeout)?);
        if let Some(tok) = bearer_token {
            store = store.with_bearer_token(&tok).map_err(|e| store_error(py, &e))?;
        }
        Ok(NativeStore { store })
    }

    #[getter]
    fn address(&self) -> &str {
        self.store.addr()
    }

    /// Write `value` under `key` fenced by `token` and `signed`; with
    /// `if_version`, only if the live version is that (0: absent).
    #[pyo3(signature = (key, value, token, signed, if_version=None))]
    fn put(
        &self,
        key: String,
        value: Vec<u8>,
        token: u64,
        signed: String,
        if_version: Option<u64>,
    ) -> PyResult<Pending> {
        let store = self.store.clone();
        spawn(move |_| async move {
            let fence = fenced_client::Fence { token, signed };
            let r = match if_version {
                Some(v) => store.put_if(&key, value, &fence, None, v).await,
                None => store.put(&key, value, fence.token, &fence.signed, None).await,
            };
            write_outcome(r)
        })
    }

    /// Write through a held lock: both tokens come from the guard itself.
    #[pyo3(signature = (guard, key, value, if_version=None))]
    fn put_guarded(
        &self,
        guard: &NativeGuard,
        key: String,
        value: Vec<u8>,
        if_version: Option<u64>,
    ) -> PyResult<Pending> {
        self.put(key, value, guard.token, guard.signed.clone(), if_version)
    }

    /// Delete `key`, fenced by `token` and `signed`.
    fn delete(&self, key: String, token: u64, signed: String) -> PyResult<Pending> {
        let store = self.store.clone();
        spawn(move |_| async move {
            let fence = fenced_client::Fence { token, signed };
            write_outcome(store.delete(&key, &fence, None).await)
        })
    }

    /// `None`, or `(value, version, token)`. With `token` and `signed` (a
    /// grant of any kind of the key's guarding lock), a fenced read: refused
    /// as stale if a later writer was granted (`StoreClient::get_fenced`).
    #[pyo3(signature = (key, token=None, signed=None))]
    fn get(&self, key: String, token: Option<u64>, signed: Option<String>) -> PyResult<Pending> {
        let store = self.store.clone();
        spawn(move |_| async move {
            let fence = token.map(|token| fenced_client::Fence { token, signed: signed.unwrap_or_default() });
            let r = store.get_fenced(&key, fence.as_ref()).await;
            Box::new(move |py: Python<'_>| match r {
                Ok(None) => Ok(py.None()),
                Ok(Some(o)) => {
                    Ok((PyBytes::new(py, &o.value), o.version, o.token).into_pyobject(py)?.into_any().unbind())
                }
                Err(e) => Err(store_error(py, &e)),
            }) as Outcome
        })
    }

    /// The highest token the store accepted for `key`.
    fn max_token(&self, key: String) -> PyResult<Pending> {
        let store = self.store.clone();
        spawn(move |_| async move {
            let r = store.max_token(&key).await;
            Box::new(move |py: Python<'_>| match r {
                Ok(t) => Ok(obj(py, t)),
                Err(e) => Err(store_error(py, &e)),
            }) as Outcome
        })
    }
}

/// The Rust PostgreSQL adapter's statements for `table`: `(create, upsert,
/// select)`, with `$1`-style parameters. One copy of the SQL: the psycopg
/// helper executes exactly these.
#[pyfunction]
fn postgres_statements(py: Python<'_>, table: &str) -> PyResult<(String, String, String)> {
    fenced_store::adapters::postgres::statements(table)
        .map_err(|e| py_error(py, "InvalidArgument", &e.to_string(), &[]))
}

/// The Rust client's own acquire+release cycle, for `bench.py` to set the
/// Python package beside it in one run: `workers` tasks on this module's
/// runtime, each on its own lock (`{prefix}{i}`), for `seconds`. Returns
/// `(cycles, errors, elapsed_seconds)`. No Python runs in the loop.
#[pyfunction]
fn rust_cycles(
    py: Python<'_>,
    endpoints: Vec<String>,
    workers: usize,
    seconds: f64,
    ttl: f64,
    prefix: String,
) -> PyResult<(u64, u64, f64)> {
    let client = {
        let _enter = runtime()?.enter();
        Client::new(ClientConfig::new(endpoints)).map_err(|e| client_error(py, &e))?
    };
    let run = secs("seconds", seconds)?;
    let ttl = secs("ttl", ttl)?;
    let rt = runtime()?;
    Ok(py.detach(move || {
        rt.block_on(async move {
            let start = now();
            let tasks: Vec<_> = (0..workers)
                .map(|i| {
                    let client = client.clone();
                    let lock = format!("{prefix}{i}");
                    tokio::spawn(async move {
                        let (mut ok, mut err) = (0u64, 0u64);
                        while now().since(start) < run {
                            match client.acquire(&lock, AcquireOptions::new(ttl)).await {
                                Ok(g) => match g.release().await {
                                    Ok(()) => ok += 1,
                                    Err(_) => err += 1,
                                },
                                Err(_) => err += 1,
                            }
                        }
                        (ok, err)
                    })
                })
                .collect();
            let (mut ok, mut err) = (0, 0);
            for t in tasks {
                if let Ok((o, e)) = t.await {
                    ok += o;
                    err += e;
                }
            }
            (ok, err, now().since(start).as_secs_f64())
        })
    }))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeClient>()?;
    m.add_class::<NativeGuard>()?;
    m.add_class::<NativeStore>()?;
    m.add_class::<Pending>()?;
    m.add_function(wrap_pyfunction!(postgres_statements, m)?)?;
    m.add_function(wrap_pyfunction!(rust_cycles, m)?)?;
    let exiting = wrap_pyfunction!(interpreter_exiting, m)?;
    m.py().import("atexit")?.call_method1("register", (exiting,))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::retry_after_secs;

    #[test]
    fn the_retry_delay_is_read_from_the_servers_message() {
        assert_eq!(retry_after_secs("c1 is over its rate of 10 requests/s; retry after 250 ms"), Some(0.25));
        assert_eq!(retry_after_secs("no number here"), None);
    }
}
