//! Histories and the pure checkers that judge them.
//!
//! Every checker is a function from a [`history::History`] to a verdict with
//! evidence. The simulator, the chaos runner and `fenced check` share them.

pub mod checkers;
pub mod cli;
pub mod final_read;
pub mod history;
pub mod import;
pub mod lin;
pub mod nemesis;
pub mod readback;
pub mod report;
pub mod testgen;
pub mod verdict;
pub mod view;
pub mod waits;
