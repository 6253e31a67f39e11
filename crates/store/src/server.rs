//! Assemble a serving store: recover from disk, start the writer, serve HTTP.

use crate::config::{StoreConfig, StoreSeams};
use crate::engine::{EngineOptions, Recovery, Store};
use crate::fence::Verifier;
use ed25519_dalek::VerifyingKey;
use std::io;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A store that is serving. Dropping it does not stop it; call [`RunningStore::stop`].
pub struct RunningStore {
    /// The address actually bound.
    pub addr: String,
    /// A handle for in-process reads and writes (the simulator's checker uses it).
    pub store: Store,
    /// What recovery found on start.
    pub recovery: Recovery,
    verifier: Arc<Verifier>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Recover the store from `seams.disk`, bind `config.listen`, and serve.
pub async fn start(config: StoreConfig, seams: StoreSeams) -> io::Result<RunningStore> {
    if config.unsafe_no_fencing && config.trust_unsigned_tokens {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--unsafe-no-fencing and --trust-unsigned-tokens exclude each other: pick one",
        ));
    }
    if config.cluster_keys.is_empty() && !config.unsafe_no_fencing && !config.trust_unsigned_tokens {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "a fenced store needs at least one cluster key"));
    }
    let (store, writer, recovery) = Store::open(seams.disk.clone(), EngineOptions::from_config(&config))?;
    let listener = seams.transport.bind(&config.listen).await?;
    let addr = listener.local_addr()?;
    if config.unsafe_no_fencing {
        tracing::warn!(
            %addr,
            "UNSAFE: --unsafe-no-fencing is on; this store accepts EVERY write whatever its token, \
             so a paused client can overwrite newer data (DDIA Figure 8-4). For demonstrations only."
        );
    }
    if config.trust_unsigned_tokens {
        tracing::warn!(
            %addr,
            "--trust-unsigned-tokens is on; this store checks token numbers but not who issued them, \
             so any client can forge a high number. A comparison aid for integer-token lock services."
        );
    }
    tracing::info!(
        %addr,
        snapshot_keys = recovery.snapshot_keys,
        wal_records = recovery.wal_records,
        torn_bytes = recovery.torn_bytes,
        started_at_ms = seams.clock.wall_ms(),
        "store serving"
    );
    let (shutdown, rx) = watch::channel(false);
    let verifier = Arc::new(Verifier::new(config.cluster_keys.clone()));
    let router = crate::api::router_with(store.clone(), config, verifier.clone(), seams.clock.clone());
    let tasks = vec![tokio::spawn(writer.run(rx.clone())), tokio::spawn(fenced_io::http::serve(listener, router, rx))];
    Ok(RunningStore { addr, store, recovery, verifier, shutdown, tasks })
}

impl RunningStore {
    /// Trust exactly `keys` from now on (a signing-key rotation: first both
    /// keys, later only the new one). Takes effect for the next write.
    pub fn set_cluster_keys(&self, keys: Vec<VerifyingKey>) {
        self.verifier.set_keys(keys);
    }

    /// The cluster keys trusted now.
    pub fn cluster_keys(&self) -> Vec<VerifyingKey> {
        self.verifier.keys()
    }

    /// Stop serving and stop the writer. Every acknowledged write is already
    /// durable; writes still queued are answered `unavailable`.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
