//! The timing configuration file: what `fenced calibrate --write-config`
//! writes and `fenced serve --config` reads.
//!
//! A TOML subset, one `key = "duration"` per line, `#` comments:
//!
//! ```toml
//! heartbeat = "60ms"
//! election_timeout = "600ms"
//! min_lease_ttl = "2s"
//! client_margin = "50ms"
//! ```
//!
//! `fenced serve` uses `heartbeat` and `election_timeout` (flags given on the
//! command line win); `min_lease_ttl` and `client_margin` are for clients.
//! Unknown keys are refused, so a typo cannot silently leave a default.

use anyhow::{bail, Context};
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
    pub fn parse(text: &str) -> anyhow::Result<TimingFile> {
        let mut t = TimingFile::default();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (key, value) =
                line.split_once('=').with_context(|| format!("line {}: expected key = \"duration\"", n + 1))?;
            let value = value.trim().trim_matches('"');
            let d = super::parse_duration(value).map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?;
            let slot = match key.trim() {
                "heartbeat" => &mut t.heartbeat,
                "election_timeout" => &mut t.election_timeout,
                "min_lease_ttl" => &mut t.min_lease_ttl,
                "client_margin" => &mut t.client_margin,
                other => bail!(
                    "line {}: unknown key {other:?}; known: heartbeat, election_timeout, min_lease_ttl, client_margin",
                    n + 1
                ),
            };
            *slot = Some(d);
        }
        Ok(t)
    }

    pub fn read(path: &Path) -> anyhow::Result<TimingFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn render(&self, header: &str) -> String {
        let mut out: String = header.lines().map(|l| format!("# {l}\n")).collect();
        for (k, v) in [
            ("heartbeat", self.heartbeat),
            ("election_timeout", self.election_timeout),
            ("min_lease_ttl", self.min_lease_ttl),
            ("client_margin", self.client_margin),
        ] {
            if let Some(d) = v {
                out.push_str(&format!("{k} = \"{}\"\n", fmt(d)));
            }
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

    #[test]
    fn round_trips_and_refuses_unknown_keys() {
        let t = TimingFile {
            heartbeat: Some(Duration::from_millis(60)),
            election_timeout: Some(Duration::from_millis(600)),
            min_lease_ttl: Some(Duration::from_secs(2)),
            client_margin: None,
        };
        let text = t.render("measured\non loopback");
        assert!(text.starts_with("# measured\n# on loopback\n"));
        assert_eq!(TimingFile::parse(&text).expect("parses"), t);
        let err = TimingFile::parse("heartbaet = \"1s\"").expect_err("typo refused");
        assert!(err.to_string().contains("unknown key"), "{err}");
        assert!(TimingFile::parse("heartbeat = \"soon\"").is_err());
    }
}
