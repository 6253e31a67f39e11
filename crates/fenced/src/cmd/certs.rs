//! `fenced certs`: a development CA, certificates for the replicas, the
//! fenced store and the clients, and a matching auth policy (for the
//! replicas and the store alike), so that a secure cluster and store are one
//! command away. Not a production PKI: the CA key sits next to the
//! certificates it signed.

use anyhow::{bail, Context};
use clap::Args;
use fenced_io::auth::{Op, Policy, Rule, TokenEntry};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct CertsArgs {
    /// Directory to write into (created). Existing files are not overwritten
    /// unless --force.
    #[arg(long, default_value = "./fenced-certs")]
    pub out: PathBuf,
    /// Number of replicas: certificates `replica-1` .. `replica-N`.
    #[arg(long, default_value_t = 3)]
    pub replicas: u32,
    /// Host names and IP addresses the replicas and the fenced store are
    /// reached at (every server certificate names them all), comma-separated.
    #[arg(long, default_value = "127.0.0.1,localhost")]
    pub hosts: String,
    /// Client identities to make certificates and bearer tokens for, each
    /// allowed everything under the prefix `NAME/`; comma-separated. An
    /// `admin` identity (cluster administration) is always made.
    #[arg(long, default_value = "alice,bob")]
    pub clients: String,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
    /// Print the written paths as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The fenced store's certificate name.
const STORE: &str = "store";

fn names(list: &str) -> Vec<String> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

fn write(path: &Path, contents: &str, secret: bool, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
    let _ = secret;
    written.push(path.to_path_buf());
    Ok(())
}

/// What `fenced certs` grants client `c`: everything on its locks, claims
/// and store keys under `c/`, and its elections named `c/...`. An election
/// is the lock `election:NAME` (campaign = acquire, observe = watch, resign
/// = release), so the election right is those three on `election:c/`.
fn client_rules(c: &str) -> [Rule; 2] {
    let all: BTreeSet<Op> = [Op::Acquire, Op::Watch, Op::Release, Op::Write, Op::Read].into();
    let election: BTreeSet<Op> = [Op::Acquire, Op::Watch, Op::Release].into();
    [
        Rule { identity: c.into(), prefix: format!("{c}/"), allow: all },
        Rule { identity: c.into(), prefix: format!("election:{c}/"), allow: election },
    ]
}

fn token() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn run(a: CertsArgs) -> anyhow::Result<i32> {
    if a.replicas == 0 {
        bail!("--replicas must be at least 1");
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    if !a.force && a.out.join("ca.pem").exists() {
        bail!("{} already holds a CA; pass --force to replace it (and every certificate it signed)", a.out.display());
    }
    let mut written = Vec::new();
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(DnType::CommonName, "fenced development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = ca_params.self_signed(&ca_key)?;
    write(&a.out.join("ca.pem"), &ca.pem(), false, &mut written)?;
    write(&a.out.join("ca-key.pem"), &ca_key.serialize_pem(), true, &mut written)?;

    let hosts = names(&a.hosts);
    let leaf = |name: &str, sans: Vec<String>, written: &mut Vec<PathBuf>| -> anyhow::Result<()> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(sans)?;
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = p.signed_by(&key, &ca, &ca_key)?;
        write(&a.out.join(format!("{name}.pem")), &cert.pem(), false, written)?;
        write(&a.out.join(format!("{name}-key.pem")), &key.serialize_pem(), true, written)?;
        Ok(())
    };
    let mut policy = Policy::default();
    for i in 1..=a.replicas {
        let name = format!("replica-{i}");
        leaf(&name, hosts.clone(), &mut written)?;
        policy.peers.insert(name);
    }
    // The fenced store's server certificate. Its identity is not a peer,
    // an admin or a client: presented as a client certificate it may do
    // nothing.
    leaf(STORE, hosts.clone(), &mut written)?;
    let mut clients = names(&a.clients);
    if !clients.iter().any(|c| c == "admin") {
        clients.push("admin".into());
    }
    for c in &clients {
        if c.starts_with("replica-") || c == STORE || c.contains('@') || c.contains('/') {
            bail!("client name {c:?} is reserved or contains '@' or '/'");
        }
        leaf(c, vec![], &mut written)?;
        policy.tokens.push(TokenEntry { token: token(), identity: c.clone() });
        if c == "admin" {
            policy.admins.insert(c.clone());
        } else {
            policy.acl.extend(client_rules(c));
        }
    }
    write(&a.out.join("auth.json"), &serde_json::to_string_pretty(&policy)?, true, &mut written)?;

    if a.json {
        println!("{}", serde_json::json!({ "out": a.out, "files": written }));
        return Ok(0);
    }
    let d = a.out.display();
    println!(
        "wrote a development CA, {} replica, 1 store and {} client certificates, and {d}/auth.json",
        a.replicas,
        clients.len()
    );
    println!("(the CA key {d}/ca-key.pem can sign anything: keep it away from the replicas in production)");
    println!();
    println!("start replica 1 (likewise 2 and 3):");
    println!(
        "  fenced serve --id 1 --listen 127.0.0.1:7001 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \\"
    );
    println!(
        "    --data-dir data/1 --tls-ca {d}/ca.pem --tls-cert {d}/replica-1.pem --tls-key {d}/replica-1-key.pem \\"
    );
    println!("    --auth {d}/auth.json");
    println!();
    println!("start a fenced store (the same policy: each client reads and writes keys under NAME/):");
    println!(
        "  fenced store serve --listen 127.0.0.1:7400 --data-dir data/store --cluster-key <the cluster's public key> \\"
    );
    println!("    --tls-ca {d}/ca.pem --tls-cert {d}/store.pem --tls-key {d}/store-key.pem --auth {d}/auth.json");
    if let Some(c) = clients.first() {
        let tls = format!("--ca {d}/ca.pem --cert {d}/{c}.pem --key {d}/{c}-key.pem");
        println!();
        println!("as client {c}, with its certificate (or --auth-token, from {d}/auth.json):");
        println!("  fenced lock acquire {c}/orders --ttl 10s {tls}");
        println!("  fenced store put {c}/orders v1 --lock {c}/orders --store 127.0.0.1:7400 {tls}");
        println!("  fenced store get {c}/orders --store 127.0.0.1:7400 {tls}");
        println!("({c} may use locks, claims and store keys under {c}/ and elections named {c}/...)");
    }
    println!();
    println!("as the administrator (membership, drain, leadership, signing keys):");
    println!("  fenced cluster members --endpoints 127.0.0.1:7001 --ca {d}/ca.pem --cert {d}/admin.pem --key {d}/admin-key.pem");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_may_use_its_own_elections_and_no_one_elses() {
        let policy = Policy { acl: [client_rules("alice"), client_rules("bob")].concat(), ..Default::default() };
        for op in [Op::Acquire, Op::Watch, Op::Release] {
            assert!(policy.allows("alice", op, "election:alice/svc"), "{op}");
            assert!(!policy.allows("alice", op, "election:bob/svc"), "{op}");
            assert!(!policy.allows("alice", op, "election:svc"), "{op}");
        }
        assert!(!policy.allows("alice", Op::Write, "election:alice/svc"), "elections are not store keys");
        assert!(policy.allows("alice", Op::Write, "alice/orders"));
    }
}
