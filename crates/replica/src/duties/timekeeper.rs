//! The timekeeper's beat: every `tick`, tell the [`Timekeeper`](crate::vitals::timekeeper::Timekeeper)
//! how late this loop woke, re-confirm a paused leader without waiting for a
//! client, and run the limping-leader check.

use crate::node::Replica;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::watch;

/// Beat every `tick` until `shutdown`; also the limping-leader check.
pub async fn run(replica: Arc<Replica>, mut shutdown: watch::Receiver<bool>) {
    let tick = replica.config.tick;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let leading = replica.raft_thinks_leader();
        replica.vitals.timekeeper.beat(leading);
        let busy = replica.vitals.timekeeper.reconfirming.clone();
        if replica.vitals.timekeeper.awaiting_reconfirm() && !busy.swap(true, Ordering::SeqCst) {
            // Re-confirm (or, as a follower, just clear) without waiting for
            // a client request; leader duties resume once it succeeds.
            let r = replica.clone();
            tokio::spawn(async move {
                let _ = r.ensure_not_paused().await;
                busy.store(false, Ordering::SeqCst);
            });
        }
        crate::duties::limp::check(&replica).await;
    }
}
