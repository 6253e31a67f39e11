//! Layer 6: what a replica does by itself, on timers or when asked: the
//! leader's lease duties, drain, membership changes, peer probes, the
//! clock watch and the limping-leader hand-over. Built on [`crate::node`];
//! errors are domain errors, turned into HTTP answers by [`crate::http`].

pub mod drain;
pub mod leader;
pub mod limp;
pub mod members;
pub mod membership;
pub mod probe;
pub mod timekeeper;
