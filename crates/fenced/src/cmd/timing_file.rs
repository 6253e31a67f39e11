//! What `fenced calibrate --write-config` writes: a `fenced serve --config`
//! file (see `config.rs`) holding the recommended timing settings:
//!
//! ```toml
//! heartbeat = "60ms"
//! election_timeout = "600ms"
//! min_ttl = "2s"
//! # client_margin = "50ms"   (for clients: `ClientConfig::margin`)
//! ```
//!
//! The client margin is not a server setting, so it is written as a comment
//! for whoever configures the clients.

use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimingFile {
    pub heartbeat: Option<Duration>,
    pub election_timeout: Option<Duration>,
    pub min_lease_ttl: Option<Duration>,
    pub client_margin: Option<Duration>,
}

fn fmt(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

impl TimingFile {
    pub fn render(&self, header: &str) -> String {
        let mut out: String = header.lines().map(|l| format!("# {l}\n")).collect();
        for (k, v) in [
            ("heartbeat", self.heartbeat),
            ("election_timeout", self.election_timeout),
            ("min_ttl", self.min_lease_ttl),
        ] {
            if let Some(d) = v {
                out.push_str(&format!("{k} = \"{}\"\n", fmt(d)));
            }
        }
        if let Some(d) = self.client_margin {
            out.push_str(&format!("# client_margin = \"{}\"   (for clients: ClientConfig::margin)\n", fmt(d)));
        }
        out
    }

    pub fn write(&self, path: &Path, header: &str) -> std::io::Result<()> {
        std::fs::write(path, self.render(header))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::config::Settings;

    #[test]
    fn what_calibrate_writes_is_a_serve_config_file() {
        let t = TimingFile {
            heartbeat: Some(Duration::from_millis(60)),
            election_timeout: Some(Duration::from_millis(600)),
            min_lease_ttl: Some(Duration::from_secs(2)),
            client_margin: Some(Duration::from_millis(50)),
        };
        let text = t.render("measured\non loopback");
        assert!(text.starts_with("# measured\n# on loopback\n"));
        let s: Settings = toml::from_str(&text).expect("fenced serve --config accepts it");
        assert_eq!((s.heartbeat, s.election_timeout, s.min_ttl), (t.heartbeat, t.election_timeout, t.min_lease_ttl));
        assert!(text.contains("# client_margin = \"50ms\""));
    }
}
