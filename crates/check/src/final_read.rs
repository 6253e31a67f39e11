//! Reads of the fenced store as a history records them, and the final read
//! of every key after a run (process `final`), for S5: each acknowledged
//! write must be visible to it. The simulator and the chaos runner read the
//! store their own way (simulated or real network, paused or real clock) and
//! share this.

use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;

/// The process of the final reads.
pub const PROCESS: &str = "final";
/// How many times a key is tried before the final reader gives up on it.
pub const ATTEMPTS: usize = 20;
/// The wait after a failed attempt.
pub const RETRY_AFTER: Duration = Duration::from_millis(200);

/// An `ok` read's value: `{"key", "value", "version", "token"}`. `found`
/// is the stored `(value, version, token)`; a missing key reads as value
/// `null`, version 0 and token 0.
pub fn read_value(key: &str, found: Option<(&[u8], u64, u64)>) -> Value {
    let v = found.map(|(value, _, _)| String::from_utf8_lossy(value).to_string());
    let (version, token) = found.map(|(_, version, token)| (version, token)).unwrap_or((0, 0));
    json!({"key": key, "value": v, "version": version, "token": token})
}

/// Read each of `keys` once: `read` tries a key (its [`read_value`], or an
/// error), at most [`ATTEMPTS`] times with `sleep(RETRY_AFTER)` after each
/// failure; the first success goes to `record`. A key no attempt read is not
/// recorded.
pub async fn final_reads<K, R, RF, E, S, SF>(keys: K, mut read: R, mut sleep: S, mut record: impl FnMut(Value))
where
    K: IntoIterator<Item = String>,
    R: FnMut(String) -> RF,
    RF: Future<Output = Result<Value, E>>,
    S: FnMut(Duration) -> SF,
    SF: Future<Output = ()>,
{
    for key in keys {
        for _attempt in 0..ATTEMPTS {
            match read(key.clone()).await {
                Ok(value) => {
                    record(value);
                    break;
                }
                Err(_) => sleep(RETRY_AFTER).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::future::ready;

    #[test]
    fn read_values_and_retries() {
        assert_eq!(
            read_value("k0", Some((b"p1-t4-w2", 3, 4))),
            json!({"key": "k0", "value": "p1-t4-w2", "version": 3, "token": 4})
        );
        assert_eq!(read_value("k1", None), json!({"key": "k1", "value": null, "version": 0, "token": 0}));
        // k0 fails twice then reads; k1 never reads.
        let tries = RefCell::new(Vec::new());
        let (slept, mut recorded) = (RefCell::new(0), Vec::new());
        let read = |key: String| {
            tries.borrow_mut().push(key.clone());
            let n = tries.borrow().iter().filter(|k| **k == key).count();
            ready(if key == "k0" && n == 3 { Ok(read_value(&key, None)) } else { Err(()) })
        };
        let sleep = |d: Duration| {
            assert_eq!(d, RETRY_AFTER);
            *slept.borrow_mut() += 1;
            ready(())
        };
        let fut = final_reads(["k0".to_string(), "k1".to_string()], read, sleep, |v| recorded.push(v));
        block_on(fut);
        assert_eq!(recorded, [read_value("k0", None)]);
        assert_eq!(tries.borrow().len(), 3 + ATTEMPTS);
        assert_eq!(*slept.borrow(), 2 + ATTEMPTS);
    }

    /// Polls a future that never waits.
    fn block_on<F: Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut f = std::pin::pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }
}
