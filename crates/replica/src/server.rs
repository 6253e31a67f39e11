//! Assemble a serving replica: listener, HTTP router, leader duties.

use crate::config::ReplicaConfig;
use crate::node::{Replica, Seams};
use std::io;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A replica that is serving. Dropping it does not stop it; call [`Running::stop`].
pub struct Running {
    pub replica: Arc<Replica>,
    /// The address actually bound.
    pub addr: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Bind, start openraft, and serve.
pub async fn start(config: ReplicaConfig, seams: Seams) -> io::Result<Running> {
    let listener = seams.transport.bind(&config.listen).await?;
    let addr = listener.local_addr()?;
    let replica = Replica::start(config, seams).await?;
    let http = Arc::new(crate::http::HttpState::new(replica.clone()));
    let (shutdown, rx) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(fenced_io::http::serve_with(
            listener,
            crate::http::routes::router(http.clone()),
            rx.clone(),
            fenced_io::http::ServeOptions {
                max_connections: replica.config.protection.limits.connections_max,
                refused: http.limiter.refused.connections_refused.clone(),
                // Peers get their own connection cap, told apart by their
                // certificate identity (see docs/security.md, Limits).
                peers: Arc::new(http.limiter.policy().map(|p| p.peers.clone()).unwrap_or_default()),
                ..fenced_io::http::ServeOptions::default()
            },
        )),
        tokio::spawn(crate::duties::leader::run(replica.clone(), rx.clone())),
        tokio::spawn(crate::duties::probe::run(replica.clone(), rx.clone())),
        tokio::spawn(crate::duties::timekeeper::run(replica.clone(), rx)),
    ];
    Ok(Running { replica, addr, shutdown, tasks })
}

impl Running {
    /// Stop serving and shut openraft down.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        self.replica.shutdown().await;
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
