//! Subcommands that need the async runtime.

pub mod bench;
pub mod calibrate;
pub mod certs;
pub mod chaos;
pub mod claim;
pub mod cluster;
pub mod cluster_vitals;
pub mod config;
pub mod credentials;
pub mod debug;
pub mod demo;
pub mod dev;
pub mod lock;
pub mod sem;
pub mod serve;
pub mod sim;
pub mod snapshot;
pub mod store;
pub mod timing_file;

use std::time::Duration;

/// Parse `10s`, `500ms`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 10s, 2m)"))
}

/// Log to stderr; `RUST_LOG` overrides the default level.
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Run an async subcommand; errors print with their causes and exit 2.
pub fn run_async(cmd: super::Command) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 2;
        }
    };
    match rt.block_on(cmd.run()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

/// Split `a,b,c` endpoint lists.
pub fn endpoints(list: &str) -> Vec<String> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}
