//! Replica configuration: the `fenced serve` flags, the same settings in a
//! TOML file (`fenced serve --config FILE`), and `fenced config check FILE`,
//! which validates a file offline with the checks a replica makes at start.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use fenced_replica::config::check::{self as config_check, Problem};
use fenced_replica::config::ReplicaConfig;
use fenced_replica::storage::data_dir;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The settings of one replica; every one is also a `fenced serve` flag.
/// In a file, durations are strings (`"500ms"`) and `peers` is a table
/// (`[peers]` then `1 = "host:port"`).
#[derive(Args, Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// This replica's id (a positive integer, unique in the cluster).
    #[arg(long)]
    pub id: Option<u64>,
    /// Address to listen on for clients and peers, e.g. 127.0.0.1:7001.
    #[arg(long)]
    pub listen: Option<String>,
    /// Every voter including this one, `1=HOST:PORT,2=HOST:PORT,3=HOST:PORT`, to create a cluster.
    /// Optional once the data directory holds the cluster: the replicated membership is the truth.
    #[arg(long, value_parser = parse_peers)]
    #[serde(default, deserialize_with = "peers_table")]
    pub peers: Option<BTreeMap<u64, String>>,
    /// Start without creating a cluster and wait to be added (`fenced cluster add ID HOST:PORT`).
    #[arg(long)]
    #[serde(default)]
    pub join: bool,
    /// Where the log and snapshots live. Must survive restarts.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    // The settings below are optional here so that a flag can override a
    // file; their defaults are `ReplicaConfig::new`'s constants, and the
    // help shows them from there ([`help`]), never from text typed here.
    #[arg(long, help = help::cluster_name())]
    pub cluster_name: Option<String>,
    #[arg(long, value_parser = super::parse_duration, help = help::heartbeat())]
    #[serde(default, with = "opt_duration")]
    pub heartbeat: Option<Duration>,
    #[arg(long, value_parser = super::parse_duration, help = help::election_timeout())]
    #[serde(default, with = "opt_duration")]
    pub election_timeout: Option<Duration>,
    #[arg(long, value_parser = super::parse_duration, help = help::min_ttl())]
    #[serde(default, with = "opt_duration")]
    pub min_ttl: Option<Duration>,
    #[arg(long, value_parser = super::parse_duration, help = help::max_ttl())]
    #[serde(default, with = "opt_duration")]
    pub max_ttl: Option<Duration>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), help = help::snapshot_every())]
    pub snapshot_every: Option<u64>,
}

/// The help of the settings with defaults, written from the constants that
/// `ReplicaConfig::new` uses, so that `--help` cannot drift from the code.
mod help {
    use fenced_replica::config::check::safe_min_ttl;
    use fenced_replica::config::{
        DEFAULT_CLUSTER_NAME, DEFAULT_ELECTION_TIMEOUT, DEFAULT_HEARTBEAT, DEFAULT_MAX_TTL, DEFAULT_SNAPSHOT_EVERY,
    };
    use std::time::Duration;

    fn d(x: Duration) -> String {
        humantime::format_duration(x).to_string()
    }

    pub fn cluster_name() -> String {
        format!(
            "The cluster's name, stored in the data directory and checked at start and at every peer handshake \
             [default: {DEFAULT_CLUSTER_NAME}]"
        )
    }

    pub fn heartbeat() -> String {
        format!("Leader heartbeat interval [default: {}]", d(DEFAULT_HEARTBEAT))
    }

    pub fn election_timeout() -> String {
        format!(
            "Shortest election timeout (the longest is twice this); at least 3 heartbeats [default: {}]",
            d(DEFAULT_ELECTION_TIMEOUT)
        )
    }

    pub fn min_ttl() -> String {
        format!(
            "Shortest lease TTL a client may ask for; at least the longest election timeout plus the shortest, \
             so that a lease outlives a failover [default: exactly that, {} with the default timeouts]",
            d(safe_min_ttl(DEFAULT_ELECTION_TIMEOUT, DEFAULT_ELECTION_TIMEOUT * 2))
        )
    }

    pub fn max_ttl() -> String {
        format!("Longest lease TTL a client may ask for [default: {}]", d(DEFAULT_MAX_TTL))
    }

    pub fn snapshot_every() -> String {
        format!(
            "Snapshot (and purge the log) after this many entries [default: {DEFAULT_SNAPSHOT_EVERY}]. `fenced \
             chaos` raises it so that the whole log can be read back for the checkers"
        )
    }
}

mod opt_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| super::super::parse_duration(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

fn peers_table<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<BTreeMap<u64, String>>, D::Error> {
    let raw = Option::<BTreeMap<String, String>>::deserialize(d)?;
    let Some(raw) = raw else { return Ok(None) };
    let mut out = BTreeMap::new();
    for (id, addr) in raw {
        let id: u64 = id.parse().map_err(|_| serde::de::Error::custom(format!("peer id {id:?} is not a number")))?;
        out.insert(id, addr);
    }
    Ok(Some(out))
}

/// Parse `1=host:port,2=host:port`.
pub fn parse_peers(s: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut peers = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('=').ok_or_else(|| format!("peer {part:?} is not ID=HOST:PORT"))?;
        let id: u64 = id.trim().parse().map_err(|_| format!("peer id {id:?} is not a number"))?;
        if peers.insert(id, addr.trim().to_string()).is_some() {
            return Err(format!("peer id {id} appears twice"));
        }
    }
    if peers.is_empty() {
        return Err("the peer list is empty; list every voter as ID=HOST:PORT".into());
    }
    Ok(peers)
}

impl Settings {
    /// Read a TOML file.
    pub fn load(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{} is not a valid fenced config file", path.display()))
    }

    /// These settings, with `over`'s where it has them (flags over a file).
    pub fn overridden_by(self, over: Settings) -> Settings {
        Settings {
            id: over.id.or(self.id),
            listen: over.listen.or(self.listen),
            peers: over.peers.or(self.peers),
            join: over.join || self.join,
            data_dir: over.data_dir.or(self.data_dir),
            cluster_name: over.cluster_name.or(self.cluster_name),
            heartbeat: over.heartbeat.or(self.heartbeat),
            election_timeout: over.election_timeout.or(self.election_timeout),
            min_ttl: over.min_ttl.or(self.min_ttl),
            max_ttl: over.max_ttl.or(self.max_ttl),
            snapshot_every: over.snapshot_every.or(self.snapshot_every),
        }
    }

    /// The replica configuration and its data directory; `Err` lists every
    /// problem found.
    pub fn resolve(&self) -> Result<(ReplicaConfig, PathBuf), Vec<Problem>> {
        let mut missing = Vec::new();
        let mut need = |setting: &'static str, present: bool| {
            if !present {
                missing.push(Problem { setting, message: "is required (flag or config file)".into() });
            }
        };
        need("id", self.id.is_some());
        need("listen", self.listen.is_some());
        need("data-dir", self.data_dir.is_some());
        let (Some(id), Some(listen), Some(data_dir)) = (self.id, self.listen.clone(), self.data_dir.clone()) else {
            return Err(missing);
        };
        let mut c = ReplicaConfig::new(id, listen, self.peers.clone().unwrap_or_default());
        c.join = self.join;
        if let Some(n) = &self.cluster_name {
            c.cluster_name = n.clone();
        }
        if let Some(h) = self.heartbeat {
            c.heartbeat = h;
        }
        if let Some(e) = self.election_timeout {
            c.election_timeout_min = e;
            c.election_timeout_max = e * 2;
        }
        c.min_ttl =
            self.min_ttl.unwrap_or_else(|| config_check::safe_min_ttl(c.election_timeout_min, c.election_timeout_max));
        if let Some(m) = self.max_ttl {
            c.max_ttl = m;
        }
        if let Some(n) = self.snapshot_every {
            c.snapshot_every_entries = n;
        }
        config_check::validate(&c).map_err(|e| e.0)?;
        Ok((c, data_dir))
    }
}

/// Resolve settings or fail with every problem, each on its own line.
pub fn resolve_or_bail(s: &Settings) -> anyhow::Result<(ReplicaConfig, PathBuf)> {
    s.resolve().or_else(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        bail!("invalid configuration:\n{}", lines.join("\n"))
    })
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate a replica config file offline: the checks `fenced serve` makes before it starts, and, if
    /// the data directory exists here, that it is this cluster's and this replica's.
    Check {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(c: ConfigCommand) -> anyhow::Result<i32> {
    let ConfigCommand::Check { file, json } = c;
    let settings = Settings::load(&file)?;
    let mut problems = Vec::new();
    match settings.resolve() {
        Ok((config, dir)) => {
            if dir.join(data_dir::META).exists() {
                let disk = fenced_io::disk::FsDisk::open(&dir)?;
                if let Err(e) = check_data_dir(&disk, &config) {
                    problems.push(Problem { setting: "data-dir", message: e });
                }
            }
        }
        Err(p) => problems = p,
    }
    if json {
        let list: Vec<_> =
            problems.iter().map(|p| serde_json::json!({"setting": p.setting, "message": p.message})).collect();
        println!("{}", serde_json::json!({"file": file, "valid": problems.is_empty(), "problems": list}));
    } else if problems.is_empty() {
        println!("{}: valid", file.display());
    } else {
        println!("{}: {} problem(s)", file.display(), problems.len());
        for p in &problems {
            println!("  {p}");
        }
    }
    Ok(if problems.is_empty() { 0 } else { 1 })
}

/// The data directory's owner and format, read only.
fn check_data_dir(disk: &dyn fenced_io::disk::Disk, c: &ReplicaConfig) -> Result<(), String> {
    match data_dir::read(disk).map_err(|e| e.to_string())? {
        Some((f, _)) if f > data_dir::FORMAT_VERSION => Err(data_dir::DataDirError::TooNew { found: f }.to_string()),
        Some((_, Some(m))) if m.cluster != c.cluster_name => {
            Err(data_dir::DataDirError::OtherCluster { found: m.cluster, configured: c.cluster_name.clone() }
                .to_string())
        }
        Some((_, Some(m))) if m.replica != c.id => {
            Err(data_dir::DataDirError::OtherReplica { found: m.replica, configured: c.id }.to_string())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_states_the_defaults_the_code_uses() {
        let cmd = Settings::augment_args(clap::Command::new("serve"));
        let help = |name: &str| {
            let arg = cmd.get_arguments().find(|a| a.get_id() == name).expect("a flag of that name");
            arg.get_help().map(ToString::to_string).unwrap_or_default()
        };
        let c = ReplicaConfig::new(1, String::new(), BTreeMap::new());
        let d = |x: Duration| humantime::format_duration(x).to_string();
        assert!(help("heartbeat").ends_with(&format!("[default: {}]", d(c.heartbeat))), "{}", help("heartbeat"));
        assert!(help("election_timeout").ends_with(&format!("[default: {}]", d(c.election_timeout_min))));
        assert!(help("max_ttl").ends_with(&format!("[default: {}]", d(c.max_ttl))));
        assert!(help("min_ttl").contains(&format!("{} with the default timeouts", d(c.min_ttl))));
        assert!(help("snapshot_every").contains(&format!("[default: {}]", c.snapshot_every_entries)));
        assert!(help("cluster_name").ends_with(&format!("[default: {}]", c.cluster_name)));
    }

    #[test]
    fn a_file_maps_to_the_serve_flags_and_flags_win() {
        let file: Settings = toml::from_str(
            r#"
            id = 2
            listen = "127.0.0.1:7002"
            data_dir = "/var/lib/fenced"
            cluster_name = "prod"
            heartbeat = "50ms"
            election_timeout = "300ms"
            [peers]
            1 = "127.0.0.1:7001"
            2 = "127.0.0.1:7002"
            3 = "127.0.0.1:7003"
            "#,
        )
        .expect("parses");
        let flags = Settings { max_ttl: Some(Duration::from_secs(60)), ..Default::default() };
        let (c, dir) = file.overridden_by(flags).resolve().expect("valid");
        assert_eq!((c.id, c.cluster_name.as_str(), dir), (2, "prod", PathBuf::from("/var/lib/fenced")));
        assert_eq!(c.peers.len(), 3);
        assert_eq!(c.election_timeout_max, Duration::from_millis(600));
        assert_eq!(c.min_ttl, Duration::from_millis(900));
        assert_eq!(c.max_ttl, Duration::from_secs(60));
    }

    #[test]
    fn unknown_keys_and_impossible_timings_are_reported() {
        assert!(toml::from_str::<Settings>("idd = 1").is_err());
        let s: Settings =
            toml::from_str("id = 1\nlisten = \"a:1\"\ndata_dir = \"d\"\njoin = true\nmin_ttl = \"100ms\"")
                .expect("parses");
        let problems = s.resolve().expect_err("refused");
        assert!(problems.iter().any(|p| p.setting == "min-ttl"), "{problems:?}");
    }
}
