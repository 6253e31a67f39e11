//! The story of a run as the seed draws it (DDIA Figures 8-4 and 8-5), as
//! inline SVG: a lane per lock with each lease a bar from grant to release
//! or expiry, labelled with its token; the store's writes as ticks on the
//! lock's lane (accepted, refused as stale 409, refused as forged 403); the
//! processes' lanes with the pauses, crashes and partitions that hit them;
//! a violation as its operations joined by a red line, with the
//! explanation beside them. Then latency and throughput over time with the
//! faults shaded, as in Jepsen's performance plots.
//!
//! A pure function of the history and verdicts. Drawn server-side as SVG
//! (not on the page's canvas) so that what it shows is in the document:
//! searchable, printable, and checkable by a test reading the DOM. Bounded:
//! at most [`LOCKS_MAX`] lock lanes, [`PROCS_MAX`] process lanes and
//! [`POINTS_MAX`] latency points, chosen evidence first, and the report
//! says what it left out.

use crate::history::{History, Op, Outcome, Process};
use crate::nemesis::Fault as NemesisFault;
use crate::verdict::Verdict;
use crate::view::{LogKind, View};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Lock lanes drawn; the locks named by evidence first, then the busiest.
pub const LOCKS_MAX: usize = 12;
/// Process lanes drawn (clients, then replicas hit by faults).
pub const PROCS_MAX: usize = 16;
/// Points on the latency plot; more operations are sampled evenly.
pub const POINTS_MAX: usize = 4000;

const W: f64 = 1200.0;
const LABEL: f64 = 150.0;
const RIGHT: f64 = 16.0;
const LOCK_H: f64 = 46.0;
const PROC_H: f64 = 26.0;
const PALETTE: [&str; 8] = ["#4c78a8", "#59a14f", "#b07aa1", "#9c755f", "#76b7b2", "#edc948", "#ff9da7", "#bab0ac"];

use super::escape::esc;

/// A lease as drawn: who held which token of which lock, from when to when,
/// and how it ended.
struct Lease {
    lock: String,
    token: u64,
    process: Process,
    from: u64,
    /// When the lock service ended it: the release, or at the latest the
    /// next grant of the lock (an expiry's instant is not recorded).
    to: u64,
    end: &'static str,
    /// Until when its holder believed it held the lock: its release, else
    /// the end of the run (a paused holder keeps believing).
    believed: u64,
    events: Vec<usize>,
}

/// A fault as drawn: on the lanes of what it hit, or across everything.
struct Fault {
    label: String,
    from: u64,
    to: u64,
    clients: Vec<u64>,
    replicas: Vec<String>,
}

fn process_label(p: &Process) -> String {
    match p {
        Process::Client(n) => format!("client {n}"),
        Process::Named(n) => n.clone(),
    }
}

/// Pair nemesis starts with their stops (same fault, same targets), and
/// say whom each hit.
fn faults(view: &View<'_>, end: u64) -> Vec<Fault> {
    let mut open: Vec<(&NemesisFault, String, u64, &serde_json::Value)> = Vec::new();
    let mut out = Vec::new();
    let key = |v: &serde_json::Value| format!("{}|{}|{}", v["targets"], v["client"], v["node"]);
    for n in &view.nemesis {
        let v = &n.op.first.value;
        if n.start {
            open.push((&n.fault, key(v), n.time, v));
        } else if n.fault == NemesisFault::HealAll {
            for (f, _, from, v) in open.drain(..) {
                out.push(fault(f, from, n.time, v));
            }
        } else if let Some(i) = open.iter().position(|(f, k, _, _)| f.same_kind(&n.fault) && *k == key(v)) {
            let (f, _, from, v) = open.remove(i);
            out.push(fault(f, from, n.time, v));
        } else if let Some(i) = open.iter().position(|(f, _, _, _)| f.same_kind(&n.fault)) {
            let (f, _, from, v) = open.remove(i);
            out.push(fault(f, from, n.time, v));
        }
    }
    out.extend(open.into_iter().map(|(f, _, from, v)| fault(f, from, end, v)));
    out.sort_by_key(|f| (f.from, f.to));
    out
}

fn fault(kind: &NemesisFault, from: u64, to: u64, v: &serde_json::Value) -> Fault {
    let on_client = kind.on_client();
    let mut clients = Vec::new();
    let mut replicas = Vec::new();
    if let Some(c) = v["client"].as_u64() {
        clients.push(c);
    }
    if let Some(n) = v["node"].as_u64() {
        replicas.push(format!("n{n}"));
    }
    for t in v["targets"].as_array().into_iter().flatten() {
        match (t.as_u64(), t.as_str()) {
            (Some(n), _) if on_client => clients.push(n),
            (Some(n), _) => replicas.push(format!("n{n}")),
            (_, Some(s)) => match s.strip_prefix("client-").and_then(|c| c.parse().ok()) {
                Some(c) => clients.push(c),
                None if s.starts_with('n') => replicas.push(s.to_string()),
                None => replicas.push(format!("n{s}")),
            },
            _ => {}
        }
    }
    let ms = (to.saturating_sub(from)) / 1_000_000;
    let verb = kind.verb();
    Fault { label: format!("{verb} {ms} ms"), from, to, clients, replicas }
}

/// The leases of each lock, from the clients' grants, releases and the log.
fn leases(view: &View<'_>, end: u64) -> BTreeMap<String, Vec<Lease>> {
    let mut by_lock: BTreeMap<String, Vec<Lease>> = BTreeMap::new();
    for a in &view.acquires {
        let Some(token) = a.token else { continue };
        let from = a.op.end().unwrap_or(a.op.start());
        by_lock.entry(a.lock.to_string()).or_default().push(Lease {
            lock: a.lock.to_string(),
            token,
            process: a.op.process().clone(),
            from,
            to: end,
            end: "held",
            believed: end,
            events: a.op.event_indices(),
        });
    }
    let released: BTreeMap<(&str, u64), u64> = view
        .releases
        .iter()
        .filter(|r| r.op.outcome() == Outcome::Ok)
        .map(|r| ((r.lock, r.token), r.op.end().unwrap_or(r.op.start())))
        .collect();
    let ended: BTreeMap<(&str, u64), LogKind> =
        view.log.iter().filter(|l| l.kind != LogKind::Grant).map(|l| ((l.lock, l.token), l.kind)).collect();
    for list in by_lock.values_mut() {
        list.sort_by_key(|l| (l.from, l.token));
        let starts: Vec<u64> = list.iter().map(|l| l.from).collect();
        for (i, l) in list.iter_mut().enumerate() {
            // The next grant of the lock bounds this lease: by then it had ended.
            let next = starts.get(i + 1).copied().unwrap_or(end);
            let release = released.get(&(l.lock.as_str(), l.token)).map(|t| (*t).max(l.from));
            l.believed = release.unwrap_or(end);
            // The log's word first: a holder may release (or think it did)
            // long after its lease expired.
            match (ended.get(&(l.lock.as_str(), l.token)), release) {
                (Some(LogKind::Expire), _) => (l.to, l.end) = (next, "expired"),
                (Some(LogKind::Revoke), _) => (l.to, l.end) = (next, "revoked"),
                (_, Some(t)) if t <= next => (l.to, l.end) = (t, "released"),
                _ => (l.to, l.end) = (next, if next == end { "held" } else { "ended" }),
            }
        }
    }
    by_lock
}

/// Where an operation was drawn, for joining the evidence's operations.
#[derive(Clone, Copy)]
struct Spot {
    x: f64,
    y: f64,
}

/// What the story shows close up: the first violation, else the first
/// write the store refused as stale (the fenced ending of the same story),
/// else the whole run. From the grants of the tokens involved to the last
/// write involved, with a margin.
fn focus(
    view: &View<'_>,
    verdicts: &[Verdict],
    leases: &BTreeMap<String, Vec<Lease>>,
    t0: u64,
    t1: u64,
) -> (u64, u64, String, Option<Subject>) {
    let window = |lock: &str, tokens: &[u64], times: &[u64]| {
        let granted = leases.get(lock).into_iter().flatten().filter(|l| tokens.contains(&l.token)).map(|l| l.from);
        let from = granted.chain(times.iter().copied()).min().unwrap_or(t0);
        let to = times.iter().copied().max().unwrap_or(t1);
        let pad = ((to - from) / 8).max(1_000_000);
        (from.saturating_sub(pad).max(t0), (to + pad).min(t1))
    };
    for v in verdicts {
        for ev in &v.evidence {
            let writes: Vec<_> =
                view.writes.iter().filter(|w| w.op.event_indices().iter().any(|i| ev.events.contains(i))).collect();
            if let Some(first) = writes.first() {
                let tokens: Vec<u64> = writes.iter().map(|w| w.token).collect();
                let times: Vec<u64> =
                    writes.iter().flat_map(|w| [w.op.start(), w.op.end().unwrap_or(w.op.start())]).collect();
                let (from, to) = window(first.lock_name(), &tokens, &times);
                let subject = Subject { lock: first.lock_name().to_string(), tokens, refused: None };
                return (from, to, format!("{} violated, close up", v.property), Some(subject));
            }
        }
    }
    if let Some(w) = view.writes.iter().find(|w| w.code == Some("stale_token")) {
        let current = w.op.done.and_then(|d| d.value["current"].as_u64()).unwrap_or(w.token);
        let newer: Vec<u64> = view
            .writes
            .iter()
            .filter(|o| o.lock_name() == w.lock_name() && o.token == current && o.op.outcome() == Outcome::Ok)
            .map(|o| o.op.end().unwrap_or(o.op.start()))
            .collect();
        let mut times = vec![w.op.start(), w.op.end().unwrap_or(w.op.start())];
        times.extend(newer.into_iter().filter(|t| *t <= w.op.start()).max());
        let (from, to) = window(w.lock_name(), &[w.token, current], &times);
        let subject = Subject {
            lock: w.lock_name().to_string(),
            tokens: vec![w.token, current],
            refused: Some((w.op.event_indices(), current)),
        };
        return (from, to, "the first stale write the store refused, close up".into(), Some(subject));
    }
    (t0, t1, "the whole run".into(), None)
}

/// What a close-up is about: a lock, the tokens that tell its story, and
/// for a refused stale write, the write's events and the newer token.
struct Subject {
    lock: String,
    tokens: Vec<u64>,
    refused: Option<(Vec<usize>, u64)>,
}

/// The story section: SVG plus a legend and notes, as HTML.
pub fn render_story(history: &History, verdicts: &[Verdict]) -> String {
    let Ok(ops) = history.operations() else { return String::new() };
    let Ok(view) = View::build(history) else { return String::new() };
    let t0 = history.events.iter().map(|e| e.time).min().unwrap_or(0);
    let t1 = history.end_time().max(t0 + 1);
    let mut leases = leases(&view, t1);
    // Every lock with a write gets a lane, leased or not.
    for w in &view.writes {
        leases.entry(w.lock_name().to_string()).or_default();
    }
    let (v0, v1, what, subject) = focus(&view, verdicts, &leases, t0, t1);
    let v1 = v1.max(v0 + 1);
    let inside = |from: u64, to: u64| to >= v0 && from <= v1;
    let x = |t: u64| LABEL + (t.clamp(v0, v1) - v0) as f64 / (v1 - v0) as f64 * (W - LABEL - RIGHT);
    let evidence_events: BTreeSet<usize> =
        verdicts.iter().flat_map(|v| v.evidence.iter().flat_map(|e| e.events.iter().copied())).collect();
    let named = |idx: &[usize]| idx.iter().any(|i| evidence_events.contains(i));
    let write_at = |w: &crate::view::Write<'_>| w.op.end().unwrap_or(w.op.start());

    // Each lock's writes, so that every lane costs its own writes only.
    let mut by_lock: BTreeMap<&str, Vec<&crate::view::Write<'_>>> = BTreeMap::new();
    for w in &view.writes {
        by_lock.entry(w.lock_name()).or_default().push(w);
    }
    // Lock lanes: those with something in the window, the evidence's first.
    let mut order: Vec<(&String, (bool, usize))> = leases
        .iter()
        .filter_map(|(lock, ls)| {
            let ls: Vec<_> = ls.iter().filter(|l| inside(l.from, l.to)).collect();
            let writes: Vec<_> =
                by_lock.get(lock.as_str()).into_iter().flatten().filter(|w| inside(write_at(w), write_at(w))).collect();
            if ls.is_empty() && writes.is_empty() {
                return None;
            }
            let in_evidence =
                ls.iter().any(|l| named(&l.events)) || writes.iter().any(|w| named(&w.op.event_indices()));
            Some((lock, (in_evidence, ls.len() + writes.len())))
        })
        .collect();
    order.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(b.1 .1.cmp(&a.1 .1)).then(a.0.cmp(b.0)));
    // Close up, the lock the story is about is the one lane.
    let focused = subject.is_some();
    if let Some(sub) = &subject {
        order.retain(|(l, _)| **l == sub.lock);
    }
    let keep = if focused { 1 } else { LOCKS_MAX };
    let shown_locks: Vec<String> = order.iter().take(keep).map(|(l, _)| (*l).clone()).collect();
    let hidden_locks = order.len().saturating_sub(keep);

    let faults: Vec<Fault> = faults(&view, t1).into_iter().filter(|f| inside(f.from, f.to)).collect();
    // Processes: clients holding or writing the shown locks in the window,
    // the clients hit by a fault there, then the replicas hit by one.
    let mut clients: BTreeSet<u64> = BTreeSet::new();
    for lock in &shown_locks {
        for l in leases[lock].iter().filter(|l| inside(l.from, l.to)) {
            if let Process::Client(c) = l.process {
                clients.insert(c);
            }
        }
    }
    for w in view.writes.iter().filter(|w| shown_locks.iter().any(|l| l == w.lock_name())) {
        if let (Process::Client(c), true) = (w.op.process(), inside(write_at(w), write_at(w))) {
            clients.insert(*c);
        }
    }
    if !focused {
        for f in &faults {
            clients.extend(f.clients.iter().copied());
        }
    }
    let mut procs: Vec<(String, Option<u64>)> = clients.iter().map(|c| (format!("client {c}"), Some(*c))).collect();
    let replicas: BTreeSet<&String> = faults.iter().flat_map(|f| f.replicas.iter()).collect();
    procs.extend(replicas.into_iter().map(|r| (format!("replica {r}"), None)));
    let hidden_procs = procs.len().saturating_sub(PROCS_MAX);
    procs.truncate(PROCS_MAX);

    let refused_note = subject.as_ref().is_some_and(|s| s.refused.is_some());
    let top = 28.0;
    let locks_h = shown_locks.len() as f64 * LOCK_H;
    let note_h = if verdicts.iter().any(|v| !v.evidence.is_empty()) || refused_note { 62.0 } else { 0.0 };
    let procs_top = top + locks_h + note_h + 22.0;
    let height = procs_top + procs.len() as f64 * PROC_H + 60.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg id="story" class="story" viewBox="0 0 {W} {height}" width="100%" font-family="system-ui,sans-serif" font-size="11">"#
    );
    s.push_str(r##"<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="6" fill="#999" opacity=".45"/></pattern></defs>"##);
    // Axis: time since the start of the run.
    let step = nice_step((v1 - v0) / 8);
    let mut t = (v0 - t0).div_ceil(step) * step;
    while t0 + t <= v1 {
        let xx = x(t0 + t);
        let _ = write!(
            s,
            r##"<line x1="{xx:.1}" y1="{a}" x2="{xx:.1}" y2="{b}" stroke="#eee"/><text x="{xx:.1}" y="14" text-anchor="middle" fill="#666">{}</text>"##,
            secs(t),
            a = top - 6.0,
            b = height - 40.0
        );
        t += step;
    }
    // Faults with no lane of their own: across everything.
    for f in faults.iter().filter(|f| f.clients.is_empty() && f.replicas.is_empty()) {
        let (a, b) = (x(f.from), x(f.to).max(x(f.from) + 1.0));
        let _ = write!(
            s,
            r##"<g class="fault global"><rect x="{a:.1}" y="{top}" width="{w:.1}" height="{h:.1}" fill="rgba(255,140,0,.12)"/><text x="{a:.1}" y="{ty:.1}" fill="#b35c00">{}</text></g>"##,
            esc(&f.label),
            w = b - a,
            h = height - 40.0 - top,
            ty = height - 44.0
        );
    }
    let mut spots: BTreeMap<usize, Spot> = BTreeMap::new();
    let mut evidence_tokens: BTreeSet<(&str, u64)> =
        view.writes.iter().filter(|w| named(&w.op.event_indices())).map(|w| (w.lock_name(), w.token)).collect();
    if let Some(sub) = &subject {
        evidence_tokens.extend(sub.tokens.iter().map(|t| (sub.lock.as_str(), *t)));
    }
    let refused_events: Vec<usize> =
        subject.as_ref().and_then(|s| s.refused.as_ref()).map(|r| r.0.clone()).unwrap_or_default();
    let in_story = |w: &crate::view::Write<'_>| {
        named(&w.op.event_indices()) || w.op.event_indices().iter().any(|e| refused_events.contains(e))
    };
    let _ = write!(s, r##"<text x="4" y="{}" font-weight="600" fill="#333">locks</text>"##, top - 8.0);
    for (i, lock) in shown_locks.iter().enumerate() {
        let y = top + i as f64 * LOCK_H;
        let _ = write!(
            s,
            r##"<g class="lane lock-lane" data-lock="{l}"><rect x="0" y="{y}" width="{W}" height="{LOCK_H}" fill="{bg}"/><text x="4" y="{ty:.1}" font-weight="600">lock {l}</text>"##,
            l = esc(lock),
            bg = if i % 2 == 0 { "#fafafa" } else { "#f3f3f3" },
            ty = y + LOCK_H / 2.0 + 4.0
        );
        for l in leases[lock].iter().filter(|l| inside(l.from, l.to)) {
            let (a, b) = (x(l.from), x(l.to).max(x(l.from) + 2.0));
            let w = b - a;
            let color = match l.process {
                Process::Client(c) => PALETTE[(c as usize) % PALETTE.len()],
                _ => "#888",
            };
            let who = process_label(&l.process);
            // As much of the label as fits: the token first.
            let long = format!(
                "token {} · {who}{}",
                l.token,
                if l.end == "held" { String::new() } else { format!(" · {}", l.end) }
            );
            let key = evidence_tokens.contains(&(lock.as_str(), l.token));
            let label = if w > 7.0 * long.len() as f64 || key {
                long
            } else if w > 7.0 * (6 + l.token.to_string().len()) as f64 {
                format!("token {}", l.token)
            } else if w > 8.0 * l.token.to_string().len() as f64 {
                l.token.to_string()
            } else {
                String::new()
            };
            let tail = if matches!(l.end, "expired" | "revoked" | "ended") && l.to <= v1 {
                // The end is known only to lie before the next grant.
                format!(
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="14" fill="url(#hatch)"/>"#,
                    (b - 18.0).max(a),
                    y + 6.0,
                    w.min(18.0)
                )
            } else {
                String::new()
            };
            let _ = write!(
                s,
                r##"<g class="lease" data-token="{tok}"><title>lease of {l_}: token {tok}, held by {who} from {f} to {to_} ({end})</title><rect x="{a:.1}" y="{y1:.1}" width="{w:.1}" height="14" rx="3" fill="{color}" opacity=".85"/>{tail}<text class="token-label" x="{tx:.1}" y="{y2:.1}" fill="{fill}" font-weight="{weight}"{halo}>{label}</text></g>"##,
                l_ = esc(lock),
                tok = l.token,
                f = secs(l.from - t0),
                to_ = secs(l.to - t0),
                end = l.end,
                y1 = y + 6.0,
                // Kept inside the figure: a label past the right edge moves left.
                tx = (a + 3.0).min(W - RIGHT - 7.0 * label.chars().count() as f64).max(LABEL),
                y2 = y + 17.0,
                label = esc(&label),
                // A token of the violation: dark on a white halo, legible
                // past the end of a short bar.
                fill = if key { "#111" } else { "#fff" },
                weight = if key { 800 } else { 600 },
                halo = if key { r##" stroke="#fff" stroke-width="3" paint-order="stroke""## } else { "" },
            );
            if l.from >= v0 {
                for e in &l.events {
                    spots.insert(*e, Spot { x: a, y: y + 13.0 });
                }
            }
        }
        // The store's writes on this lock: ticks below the leases, marked
        // with their token when there is room.
        let mut writes: Vec<_> =
            by_lock.get(lock.as_str()).into_iter().flatten().filter(|w| inside(write_at(w), write_at(w))).collect();
        writes.sort_by_key(|w| write_at(w));
        let roomy = (writes.len() as f64) < (W - LABEL) / 40.0;
        // The story's writes (the clash, or the refusal and the newer
        // write) stand out: a taller tick, and token and writer on a white
        // halo, the first to the left of its tick and the rest to the
        // right, so two writes close in time stay legible. Other writes are
        // labelled only where their label overlaps nothing.
        let story_x: Vec<f64> = writes.iter().filter(|w| in_story(w)).map(|w| x(write_at(w))).collect();
        let mut story_seen = 0;
        let mut last_label = f64::NEG_INFINITY;
        for w in writes {
            let xx = x(write_at(w));
            let yy = y + 34.0;
            let (class, mark, color, what) = match (w.op.outcome(), w.code) {
                (Outcome::Ok, _) => ("accepted", "✓", "#1f8a4c", "accepted".to_string()),
                (Outcome::Fail, Some("stale_token")) => ("stale", "✗", "#d9822b", "refused: stale token (409)".into()),
                (Outcome::Fail, Some(c)) if c.contains("token") || c.contains("forged") || c.contains("signature") => {
                    ("forged", "✗", "#8e44ad", format!("refused: {c} (403)"))
                }
                (Outcome::Fail, c) => ("refused", "✗", "#c0392b", format!("refused: {}", c.unwrap_or("error"))),
                _ => ("unknown", "?", "#888", "outcome unknown".to_string()),
            };
            let story = in_story(w);
            let who = process_label(w.op.process());
            let (text, anchor, tx, top_y, width, extra) = if story {
                story_seen += 1;
                let t = format!("{mark}{} {who}", w.token);
                let len = 7.0 * t.chars().count() as f64;
                let (anchor, tx) = if story_seen == 1 && story_x.len() > 1 {
                    ("end", (xx - 8.0).max(LABEL + len))
                } else {
                    ("start", (xx + 8.0).min(W - RIGHT - len))
                };
                (
                    t,
                    anchor,
                    tx,
                    yy - 14.0,
                    3.0,
                    r##" font-size="12" stroke="#fff" stroke-width="3" paint-order="stroke""##,
                )
            } else if roomy && xx - last_label >= 34.0 && story_x.iter().all(|sx| (sx - xx).abs() >= 100.0) {
                last_label = xx;
                (format!("{mark}{}", w.token), "middle", xx, yy - 8.0, 2.0, "")
            } else {
                (String::new(), "middle", xx, yy - 8.0, 2.0, "")
            };
            let _ = write!(
                s,
                r#"<g class="write {class}" data-token="{tok}"><title>write to {k} with token {tok} by {who}: {what}</title><line x1="{xx:.1}" y1="{a:.1}" x2="{xx:.1}" y2="{b:.1}" stroke="{color}" stroke-width="{width}"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="{anchor}" fill="{color}" font-weight="700"{extra}>{text}</text></g>"#,
                k = esc(w.key),
                tok = w.token,
                who = esc(&who),
                text = esc(&text),
                a = top_y,
                b = yy + 2.0,
                ty = yy + 11.0
            );
            for e in w.op.event_indices() {
                spots.insert(e, Spot { x: xx, y: yy - 3.0 });
            }
        }
        s.push_str("</g>");
    }
    // Process lanes.
    let _ = write!(s, r##"<text x="4" y="{}" font-weight="600" fill="#333">processes</text>"##, procs_top - 8.0);
    for (i, (label, client)) in procs.iter().enumerate() {
        let y = procs_top + i as f64 * PROC_H;
        let _ = write!(
            s,
            r##"<g class="lane process-lane" data-process="{l}"><rect x="0" y="{y}" width="{W}" height="{PROC_H}" fill="{bg}"/><text x="4" y="{ty:.1}">{l}</text>"##,
            l = esc(label),
            bg = if i % 2 == 0 { "#fcfcfc" } else { "#f5f5f5" },
            ty = y + PROC_H / 2.0 + 4.0
        );
        if let Some(c) = client {
            // What this client believed it held: thin bars.
            for l in
                leases.values().flatten().filter(|l| l.process == Process::Client(*c) && inside(l.from, l.believed))
            {
                let (a, b) = (x(l.from), x(l.believed).max(x(l.from) + 2.0));
                let _ = write!(
                    s,
                    r##"<rect class="belief" x="{a:.1}" y="{yy:.1}" width="{w:.1}" height="4" fill="{color}" opacity=".6"><title>client believes it holds {lk} with token {t}</title></rect>"##,
                    w = b - a,
                    yy = y + PROC_H - 7.0,
                    color = PALETTE[(*c as usize) % PALETTE.len()],
                    lk = esc(&l.lock),
                    t = l.token
                );
            }
            // Its writes, as dots where they were sent.
            for op in ops
                .iter()
                .filter(|o| *o.process() == Process::Client(*c) && o.f() == "write" && inside(o.start(), o.start()))
            {
                let _ = write!(s, r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="#555"/>"##, x(op.start()), y + 8.0);
            }
        }
        let hits = faults.iter().filter(|f| match client {
            Some(c) => f.clients.contains(c),
            None => f.replicas.iter().any(|r| label == &format!("replica {r}")),
        });
        for f in hits {
            let (a, b) = (x(f.from), x(f.to).max(x(f.from) + 2.0));
            let fits = b - a > 6.5 * f.label.len() as f64;
            let _ = write!(
                s,
                r##"<g class="fault"><title>{l}</title><rect x="{a:.1}" y="{y1:.1}" width="{w:.1}" height="{h:.1}" fill="url(#hatch)" stroke="#777"/><text x="{tx:.1}" y="{ty:.1}" fill="#333" font-weight="600">{t}</text></g>"##,
                w = b - a,
                y1 = y + 2.0,
                h = PROC_H - 4.0,
                tx = a + 3.0,
                ty = y + PROC_H / 2.0 + 4.0,
                l = esc(&f.label),
                t = if fits { esc(&f.label) } else { String::new() }
            );
        }
        s.push_str("</g>");
    }
    // Violations: their drawn operations joined; the first one's
    // explanation beside it, under the lock lanes.
    let mut explained = false;
    for v in verdicts {
        for ev in &v.evidence {
            let mut pts: Vec<Spot> = Vec::new();
            for e in &ev.events {
                if let Some(sp) = spots.get(e) {
                    if !pts.iter().any(|p| (p.x - sp.x).abs() < 0.1 && (p.y - sp.y).abs() < 0.1) {
                        pts.push(*sp);
                    }
                }
            }
            pts.sort_by(|a, b| a.x.total_cmp(&b.x));
            if pts.len() < 2 {
                continue;
            }
            let path: Vec<String> = pts.iter().map(|p| format!("{:.1},{:.1}", p.x, p.y)).collect();
            let _ = write!(
                s,
                r##"<g class="violation" data-property="{p}"><polyline points="{pts}" fill="none" stroke="#d00" stroke-width="2.5" stroke-dasharray="5 3"/>"##,
                p = v.property,
                pts = path.join(" ")
            );
            for p in &pts {
                let _ = write!(
                    s,
                    r##"<circle cx="{:.1}" cy="{:.1}" r="6" fill="none" stroke="#d00" stroke-width="2"/>"##,
                    p.x, p.y
                );
            }
            if !explained {
                explained = true;
                let last = pts[pts.len() - 1];
                let lines = wrap(&format!("{} violated: {}", v.property, ev.note), 110);
                let ny = top + locks_h + 16.0;
                let longest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
                let nx = (last.x - 300.0).min(W - RIGHT - 6.6 * longest).max(LABEL);
                let _ = write!(
                    s,
                    r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#d00" stroke-width="1.5"/><text class="violation-note" x="{nx:.1}" y="{ny:.1}" fill="#b00" font-weight="700">"##,
                    last.x,
                    last.y + 6.0,
                    last.x,
                    ny - 11.0
                );
                for (k, line) in lines.iter().enumerate() {
                    let _ = write!(
                        s,
                        r#"<tspan x="{nx:.1}" dy="{}">{}</tspan>"#,
                        if k == 0 { 0.0 } else { 13.0 },
                        esc(line)
                    );
                }
                s.push_str("</text>");
            }
            s.push_str("</g>");
        }
    }
    // A refused stale write: joined to the newer token's accepted write
    // before it, and explained.
    if let Some((events, current)) = subject.as_ref().and_then(|s| s.refused.as_ref()) {
        let refused = events.iter().find_map(|e| spots.get(e).copied());
        let lock = subject.as_ref().map(|s| s.lock.as_str()).unwrap_or_default();
        let newer = view
            .writes
            .iter()
            .filter(|w| w.lock_name() == lock && w.token == *current && w.op.outcome() == Outcome::Ok)
            .filter_map(|w| w.op.completion.and_then(|c| spots.get(&c).copied()))
            .filter(|p| refused.is_some_and(|r| p.x <= r.x))
            .max_by(|a, b| a.x.total_cmp(&b.x));
        let token = view.writes.iter().find(|w| w.op.event_indices() == *events).map_or(0, |w| w.token);
        if let (Some(r), Some(n)) = (refused, newer) {
            let ny = top + LOCK_H + 16.0;
            let note = format!(
                "the store refused the write with token {token} (409 stale_token): it had already accepted token {current} for this lock"
            );
            let nx = (r.x - 300.0).min(W - RIGHT - 6.6 * note.len() as f64).max(LABEL);
            let _ = write!(
                s,
                r##"<g class="refusal"><polyline points="{:.1},{:.1} {:.1},{:.1}" fill="none" stroke="#d9822b" stroke-width="2.5" stroke-dasharray="5 3"/><circle cx="{:.1}" cy="{:.1}" r="6" fill="none" stroke="#d9822b" stroke-width="2"/><circle cx="{:.1}" cy="{:.1}" r="6" fill="none" stroke="#d9822b" stroke-width="2"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#d9822b" stroke-width="1.5"/><text class="refusal-note" x="{nx:.1}" y="{ny:.1}" fill="#a55a00" font-weight="700">{note}</text></g>"##,
                n.x,
                n.y,
                r.x,
                r.y,
                n.x,
                n.y,
                r.x,
                r.y,
                r.x,
                r.y + 6.0,
                r.x,
                ny - 11.0
            );
        }
    }
    // Legend.
    let ly = height - 22.0;
    let _ = write!(
        s,
        r##"<g class="legend" font-size="11"><rect x="{LABEL}" y="{a}" width="22" height="10" rx="2" fill="#4c78a8"/><text x="{b}" y="{c}">lease, labelled with its token (hatched end: it had expired by the next grant)</text><text x="{d}" y="{c}" fill="#1f8a4c" font-weight="700">✓ write accepted</text><text x="{e}" y="{c}" fill="#d9822b" font-weight="700">✗ refused stale (409)</text><text x="{f}" y="{c}" fill="#8e44ad" font-weight="700">✗ refused forged (403)</text><rect x="{g}" y="{a}" width="22" height="10" fill="url(#hatch)" stroke="#777"/><text x="{h}" y="{c}">pause / crash</text><line x1="{i}" y1="{k}" x2="{j}" y2="{k}" stroke="#d00" stroke-width="2.5" stroke-dasharray="5 3"/><text x="{l}" y="{c}" fill="#b00">violation</text></g>"##,
        a = ly - 9.0,
        b = LABEL + 28.0,
        c = ly,
        d = LABEL + 450.0,
        e = LABEL + 570.0,
        f = LABEL + 710.0,
        g = LABEL + 860.0,
        h = LABEL + 886.0,
        i = LABEL + 965.0,
        j = LABEL + 990.0,
        k = ly - 4.0,
        l = LABEL + 995.0,
    );
    s.push_str("</svg>");
    let mut notes = Vec::new();
    if hidden_locks > 0 {
        notes.push(format!("{hidden_locks} more locks active in this window are not drawn"));
    }
    if hidden_procs > 0 {
        notes.push(format!("{hidden_procs} more processes are not drawn"));
    }
    let mut out = format!(
        "<h2>The story: {} <span class=\"muted\">({} to {} of {}; every operation is in the timeline below)</span></h2>",
        esc(&what),
        secs(v0 - t0),
        secs(v1 - t0),
        secs(t1 - t0)
    );
    if shown_locks.is_empty() {
        out.push_str("<p class=\"muted\">No lock was granted in this history.</p>");
    }
    out.push_str(&s);
    if !notes.is_empty() {
        let _ = write!(out, "<p class=\"muted\">{}.</p>", esc(&notes.join("; ")));
    }
    out.push_str(&perf(&ops, &faults_all(&view, t1), t0, t1));
    out
}

fn faults_all(view: &View<'_>, end: u64) -> Vec<Fault> {
    faults(view, end)
}

/// Latency of each operation (a point, coloured by outcome) and
/// throughput, over time, with the faults shaded.
fn perf(ops: &[Op<'_>], faults: &[Fault], t0: u64, t1: u64) -> String {
    let client_ops: Vec<&Op<'_>> =
        ops.iter().filter(|o| matches!(o.process(), Process::Client(_)) && o.invoke.is_some()).collect();
    if client_ops.is_empty() {
        return String::new();
    }
    let (ph, gap) = (160.0, 36.0);
    let height = 2.0 * ph + gap + 40.0;
    let x = |t: u64| LABEL + (t.saturating_sub(t0)) as f64 / (t1 - t0) as f64 * (W - LABEL - RIGHT);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<h2>Latency and throughput</h2><svg id="perf" class="perf" viewBox="0 0 {W} {height}" width="100%" font-family="system-ui,sans-serif" font-size="11">"#
    );
    for f in faults {
        let (a, b) = (x(f.from), x(f.to).max(x(f.from) + 1.0));
        // A client's pause is shaded lightly: it stops one client, not the service.
        let client_only = !f.clients.is_empty() && f.replicas.is_empty();
        let _ = write!(
            s,
            r##"<rect class="fault-band" x="{a:.1}" y="10" width="{w:.1}" height="{h:.1}" fill="{fill}"><title>{l}</title></rect>"##,
            w = b - a,
            h = 2.0 * ph + gap,
            l = esc(&f.label),
            fill = if client_only { "rgba(120,120,120,.05)" } else { "rgba(255,140,0,.15)" }
        );
    }
    // Latency, log scale from 100 µs to the slowest.
    let lat: Vec<(u64, u64, Outcome)> = client_ops
        .iter()
        .map(|o| {
            let end = o.end().unwrap_or(t1);
            (o.start(), end.saturating_sub(o.start()).max(1), o.outcome())
        })
        .collect();
    let max = lat.iter().map(|l| l.1).max().unwrap_or(1).max(1_000_000) as f64;
    let min = 100_000f64;
    let y_lat = |ns: u64| 10.0 + ph - ((ns as f64).max(min).ln() - min.ln()) / (max.ln() - min.ln()) * ph;
    let _ = write!(
        s,
        r##"<text x="4" y="24" font-weight="600">latency</text><text x="4" y="40" fill="#666">each operation</text>"##
    );
    for ms in [0.1f64, 1.0, 10.0, 100.0, 1000.0, 10_000.0] {
        let ns = (ms * 1e6) as u64;
        if (ns as f64) <= max {
            let yy = y_lat(ns);
            let _ = write!(
                s,
                r##"<line x1="{LABEL}" y1="{yy:.1}" x2="{x2}" y2="{yy:.1}" stroke="#eee"/><text x="{tx}" y="{ty:.1}" text-anchor="end" fill="#666">{ms} ms</text>"##,
                x2 = W - RIGHT,
                tx = LABEL - 4.0,
                ty = yy + 4.0
            );
        }
    }
    let stride = lat.len().div_ceil(POINTS_MAX).max(1);
    for (at, ns, outcome) in lat.iter().step_by(stride) {
        let color = match outcome {
            Outcome::Ok => "#1f8a4c",
            Outcome::Fail => "#c0392b",
            _ => "#d9822b",
        };
        let _ = write!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="1.6" fill="{color}" opacity=".6"/>"#, x(*at), y_lat(*ns));
    }
    // Throughput: completions per bucket.
    const BUCKETS: usize = 120;
    let mut ok = [0u32; BUCKETS];
    let mut bad = [0u32; BUCKETS];
    let span = (t1 - t0).max(1);
    for o in &client_ops {
        let Some(end) = o.end() else { continue };
        let b = (((end - t0) as u128 * BUCKETS as u128 / span as u128) as usize).min(BUCKETS - 1);
        if o.outcome() == Outcome::Ok {
            ok[b] += 1;
        } else {
            bad[b] += 1;
        }
    }
    let bucket_s = span as f64 / 1e9 / BUCKETS as f64;
    let peak = ok.iter().chain(bad.iter()).copied().max().unwrap_or(1).max(1) as f64;
    let top = 10.0 + ph + gap;
    let y_tp = |n: u32| top + ph - n as f64 / peak * ph;
    let _ = write!(
        s,
        r##"<text x="4" y="{a}" font-weight="600">throughput</text><text x="4" y="{b}" fill="#666">ops/s, by outcome</text><text x="{tx}" y="{c}" text-anchor="end" fill="#666">{p:.0}</text><text x="{tx}" y="{d}" text-anchor="end" fill="#666">0</text>"##,
        a = top + 14.0,
        b = top + 30.0,
        c = top + 8.0,
        d = top + ph,
        tx = LABEL - 4.0,
        p = peak / bucket_s
    );
    for (series, color) in [(&ok, "#1f8a4c"), (&bad, "#c0392b")] {
        let pts: Vec<String> = series
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let t = t0 + ((i as u128 * span as u128 + span as u128 / 2) / BUCKETS as u128) as u64;
                format!("{:.1},{:.1}", x(t), y_tp(*n))
            })
            .collect();
        let _ = write!(s, r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.5"/>"#, pts.join(" "));
    }
    let _ =
        write!(s, r##"<line x1="{LABEL}" y1="{y}" x2="{x2}" y2="{y}" stroke="#999"/>"##, y = top + ph, x2 = W - RIGHT);
    s.push_str("</svg>");
    if stride > 1 {
        let _ = write!(s, "<p class=\"muted\">latency: one operation in {stride} drawn ({} in all).</p>", lat.len());
    }
    s
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let cur = lines.last_mut().expect("one line at least");
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            if lines.len() == 4 {
                lines[3].push('…');
                break;
            }
            lines.push(word.to_string());
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
    }
    lines
}

fn nice_step(rough: u64) -> u64 {
    let rough = rough.max(1);
    let mag = 10u64.pow(rough.ilog10());
    let m = rough / mag;
    mag * if m >= 5 {
        5
    } else if m >= 2 {
        2
    } else {
        1
    }
}

fn secs(ns: u64) -> String {
    let s = ns as f64 / 1e9;
    if s >= 10.0 {
        format!("{s:.0}s")
    } else if s >= 1.0 {
        format!("{s:.1}s")
    } else {
        format!("{:.0}ms", s * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::check_all;
    use crate::verdict::Options;

    fn story(text: &str) -> String {
        let h = History::parse_jsonl(text).expect("parses");
        render_story(&h, &check_all(&h, &Options::default()))
    }

    #[test]
    fn figure_8_4_shows_the_leases_the_pause_and_the_clashing_writes() {
        let s = story(include_str!("../../testdata/fig-8-4-unfenced.jsonl"));
        // The close-up: from the grant of token 33 to client 1's late write.
        assert!(s.contains("token 33 · client 1 · expired"), "the paused client's lease, expired");
        assert!(s.contains("token 35 · client 2"), "the newer token");
        assert!(!s.contains("token 37"), "the later grant is outside the close-up");
        assert!(s.contains("class=\"lane lock-lane\" data-lock=\"file\""));
        assert!(s.contains("data-process=\"client 1\"") && s.contains("paused 27 ms"), "the pause on client 1's lane");
        assert_eq!(s.matches("class=\"write accepted\"").count(), 2, "both writes accepted: the corruption");
        assert!(s.contains(">✓35 client 2</text>"), "the newer write, with its writer: {s}");
        assert!(s.contains(">✓33 client 1</text>"), "the late write with the old token, with its writer");
        assert!(s.contains("class=\"violation\" data-property=\"S3\""), "the two writes joined");
        assert!(s.contains("S3 violated"), "with the explanation beside them");
        assert!(s.contains("expired"), "the paused client's lease expired");
    }

    #[test]
    fn figure_8_5_shows_the_stale_write_refused_and_no_violation() {
        let s = story(include_str!("../../testdata/fig-8-5-fenced.jsonl"));
        assert_eq!(s.matches("class=\"write stale\"").count(), 1, "token 33 refused as stale");
        assert_eq!(s.matches("class=\"write accepted\"").count(), 1);
        assert!(!s.contains("class=\"violation\""));
        assert!(
            s.contains("the store refused the write with token 33 (409 stale_token): it had already accepted token 35")
        );
    }

    #[test]
    fn forged_writes_are_told_from_stale_ones() {
        let s = story(concat!(
            "{\"type\":\"invoke\",\"process\":3,\"f\":\"write\",\"value\":{\"key\":\"k\",\"token\":99},\"time\":1}\n",
            "{\"type\":\"fail\",\"process\":3,\"f\":\"write\",\"value\":{\"key\":\"k\",\"token\":99,\"code\":\"bad_token\"},\"time\":2}\n",
        ));
        assert!(s.contains("class=\"write forged\""), "{s}");
    }

    #[test]
    fn a_hostile_lock_name_is_escaped() {
        let s = story(concat!(
            "{\"type\":\"invoke\",\"process\":1,\"f\":\"acquire\",\"value\":{\"lock\":\"<script>x\"},\"time\":1}\n",
            "{\"type\":\"ok\",\"process\":1,\"f\":\"acquire\",\"value\":{\"lock\":\"<script>x\",\"token\":3,\"lease\":3},\"time\":2}\n",
        ));
        assert!(!s.contains("<script>") && s.contains("&lt;script&gt;x"));
    }
}
