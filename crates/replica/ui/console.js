// The fenced console: read-only, vanilla JS, no build step.
//
// Everything it shows comes from the replica's API with the bearer token
// typed in (sent as `Authorization`), so a caller sees what the API lets it
// read and nothing else. Names are user data: they are only ever set as
// text (never as HTML).
"use strict";

(function () {
  const PAGE = 100;            // rows per page: the table stays small at any size
  const EVENTS_KEPT = 200;     // events listed, newest first
  const POLL_MS = 1000;        // status and page refresh
  const { $, el, headers, showError, api, us, ms, time, dl } = window.fenced;

  const state = {
    tab: "locks",
    prefix: "",
    cursors: [null],           // `after` of each page visited; the last is the current page
    next: null,
    status: null,
    stream: null,              // AbortController of the event stream
    refreshQueued: false,
    rendered: false,           // the first page of the table is drawn (see renderLocks)
  };

  // ---- cluster ----------------------------------------------------------

  function renderStatus(s) {
    state.status = s;
    const role = s.leader === s.id ? "leader" : "follower";
    const view = $("view");
    view.replaceChildren(
      "View of replica ", el("span", { id: "view-replica" }, s.id), " (",
      el("span", { class: role, id: "view-role" }, role), ") · leader ",
      el("span", { id: "leader" }, s.leader === null || s.leader === undefined ? "none" : s.leader),
      " · term ", el("span", { id: "term" }, s.term));
    dl($("summary"), [
      ["state", s.state], ["commit index", s.commit_index], ["applied index", s.applied_index],
      ["last log index", s.last_log_index], ["leases", s.leases], ["locks held", s.locks_held],
      ["draining", s.draining ? "yes" : "no"],
    ]);
    const rows = Object.entries(s.members || {}).map(([id, addr]) => {
      const n = Number(id);
      const p = (s.peers || {})[id];
      const role = n === s.leader ? "leader" : "follower";
      const me = n === s.id ? " (this view)" : (p && p.suspected ? " (suspected: not heard from)" : "");
      if (!p) return el("tr", { dataset: { replica: id } }, el("td", null, id), el("td", null, addr), el("td", null, role + me), el("td", null, "–"), el("td", null, "–"), el("td", null, "–"), el("td", null, "–"));
      return el("tr", { dataset: { replica: id } },
        el("td", null, id), el("td", null, addr), el("td", null, role + me),
        el("td", { class: "num" + (p.suspected ? " suspected" : "") }, `${p.phi.toFixed(2)} / ${p.phi_threshold}`),
        el("td", { class: "num" }, `${us(p.rtt.p50_us)} / ${us(p.rtt.p99_us)}`),
        el("td", { class: "num" }, p.replication.count ? us(p.replication.p99_us) : "– (measured by the leader)"),
        el("td", { class: "num" }, p.last_heard_ms_ago === null ? "never" : ms(p.last_heard_ms_ago) + " ago"));
    });
    $("members").tBodies[0].replaceChildren(...rows);
    const c = s.clock;
    const pairs = [];
    if (c) {
      pairs.push(["clock error bound", "±" + us(c.wall.max_error_us) + (c.wall.synchronized ? "" : " (unsynchronised: not to be trusted)")]);
      pairs.push(["pauses", `${c.pauses} (longest ${ms(c.longest_pause_ms)})`]);
      pairs.push(["pause step-downs", c.pause_stepdowns]);
      pairs.push(["clock jumps", c.jumps]);
      pairs.push(["tick lateness p99", us(c.lateness.p99_us)]);
    }
    if (s.fsync) pairs.push(["fsync p99", us(s.fsync.p99_us)]);
    if (s.limp) pairs.push(["limping", s.limp.limping ? "yes: " + s.limp.reason : "no"]);
    dl($("health"), pairs);
  }

  async function refreshStatus() {
    try {
      renderStatus(await api("/v1/cluster/status"));
      showError("");
    } catch (e) {
      showError(e.message);
    }
  }

  // ---- locks, elections, claims ------------------------------------------

  function listPath() {
    const after = state.cursors[state.cursors.length - 1];
    const q = new URLSearchParams();
    const prefix = state.tab === "elections" ? "election:" + state.prefix : state.prefix;
    if (prefix) q.set("prefix", prefix);
    if (after !== null) q.set("after", after);
    q.set("limit", PAGE);
    return (state.tab === "claims" ? "/v1/claims?" : "/v1/locks?") + q;
  }

  function head(cols) {
    $("locks-head").replaceChildren(el("tr", null, ...cols.map((c) => el("th", { class: c.endsWith("left") ? "num" : null }, c))));
  }

  function renderLocks(page, fetchedAt) {
    const claims = state.tab === "claims";
    head(claims ? ["name", "token", "owner", "lease"] : [state.tab === "elections" ? "election" : "lock", "token", "lease", "value", "lease left", "waiters"]);
    const items = claims ? page.claims : page.locks;
    const rows = items.map((l) => {
      if (claims) return el("tr", { dataset: { lock: l.name } }, el("td", null, l.name), el("td", { class: "token" }, l.token), el("td", null, l.owner), el("td", null, l.lease ?? "–"));
      const h = l.holder;
      const left = el("td", { class: "num left" }, "–");
      if (h && l.lease_left_ms !== undefined && l.lease_left_ms !== null) {
        left.dataset.deadline = String(fetchedAt + l.lease_left_ms);
        left.dataset.ttl = String(l.ttl_ms || l.lease_left_ms || 1);
      }
      const name = state.tab === "elections" ? l.lock.slice("election:".length) : l.lock;
      return el("tr", { dataset: { lock: l.lock } },
        el("td", null, name),
        el("td", { class: "token" }, h ? h.token : "–"),
        el("td", null, h ? h.lease : "–"),
        el("td", null, h ? h.value : ""),
        left,
        el("td", null, l.waiters.length ? l.waiters.join(" → ") : ""));
    });
    if (!rows.length) rows.push(el("tr", null, el("td", { class: "empty", colspan: 6 }, state.prefix ? "nothing under this prefix (or nothing you may watch)" : "nothing here yet, or nothing you may watch")));
    $("locks-body").replaceChildren(...rows);
    if (!state.rendered) {
      // For scripts/bench-console: when the first page of the table was in
      // the document, and when the frame after it was drawn, in ms since
      // navigation start (the browser's own clock).
      state.rendered = true;
      const root = document.documentElement;
      root.dataset.firstRowsMs = performance.now().toFixed(1);
      requestAnimationFrame(() => { root.dataset.firstFrameMs = performance.now().toFixed(1); });
    }
    const first = (state.cursors.length - 1) * PAGE;
    const total = page.total_exact ? page.total : `${page.total}+`;
    $("range").textContent = items.length ? `${first + 1}–${first + items.length} of ${total} · replica ${page.replica} at index ${page.applied}` : `0 of ${total}`;
    state.next = page.next;
    $("next").disabled = !page.next;
    $("prev").disabled = state.cursors.length < 2;
    tick();
  }

  async function refreshPage() {
    try {
      const t = performance.now();
      renderLocks(await api(listPath()), t);
    } catch (e) {
      showError(e.message);
    }
  }

  // Soon, at most every 200 ms: events arrive in bursts.
  function queueRefresh() {
    if (state.refreshQueued) return;
    state.refreshQueued = true;
    setTimeout(() => { state.refreshQueued = false; refreshPage(); }, 200);
  }

  // The countdown runs locally between refreshes.
  function tick() {
    const now = performance.now();
    for (const td of document.querySelectorAll("td[data-deadline]")) {
      const left = Number(td.dataset.deadline) - now;
      const ttl = Number(td.dataset.ttl);
      const frac = Math.max(0, Math.min(1, left / ttl));
      const low = frac < 0.25;
      td.classList.toggle("low", low);
      const bar = el("span", { class: "bar" + (low ? " low" : "") });
      bar.style.width = `${(frac * 4).toFixed(2)}em`; // CSSOM: allowed by the page's CSP, unlike a style attribute
      td.replaceChildren(bar, left > 0 ? `${(left / 1000).toFixed(1)} s` : "ending…");
    }
  }

  // ---- events -------------------------------------------------------------

  function describe(e) {
    switch (e.kind) {
      case "hello": return `stream from replica ${e.replica} (leader ${e.leader ?? "none"}, term ${e.term}, applied ${e.index})`;
      case "granted": return `${e.lock} → lease ${e.lease}, token ${e.token}`;
      case "handoff": return `${e.lock} handed to lease ${e.lease}, token ${e.token}`;
      case "released": case "expired": case "revoked": return `${e.lock} token ${e.token} (lease ${e.lease})`;
      case "claimed": return `${e.lock} token ${e.token}`;
      case "leader": return `leader is now ${e.leader ?? "unknown"} (term ${e.term})`;
      case "step_down": return `replica ${e.replica} stepped down (term ${e.term})`;
      case "refused": return `${e.status} ${e.code}: ${e.message}`;
      case "missed": return `missed ${e.count} events (this stream fell behind)`;
      case "key_rotated": return "a new signing key signs from now on";
      case "keys_retired": return "older signing keys retired";
      case "key_installed": return "signing key installed";
      default: return JSON.stringify(e);
    }
  }

  function addEvent(e) {
    const list = $("events");
    list.prepend(el("li", { class: e.kind, dataset: { kind: e.kind } }, el("time", null, time(e.at_ms)), el("span", { class: "k" }, e.kind), describe(e)));
    while (list.childElementCount > EVENTS_KEPT) list.lastElementChild.remove();
    if (e.lock !== undefined || e.kind === "missed") queueRefresh();
    if (e.kind === "leader" || e.kind === "step_down") refreshStatus();
  }

  function setStream(text, live) {
    const b = $("stream");
    b.textContent = text;
    b.classList.toggle("live", live);
  }

  // One stream per page. fetch, not EventSource: EventSource cannot send
  // an Authorization header.
  async function openStream() {
    if (state.stream) state.stream.abort();
    const ctl = new AbortController();
    state.stream = ctl;
    let delay = 500;
    while (!ctl.signal.aborted) {
      try {
        const q = state.tab !== "claims" && state.prefix ? "?prefix=" + encodeURIComponent(state.tab === "elections" ? "election:" + state.prefix : state.prefix) : "";
        const resp = await fetch("/v1/events" + q, { headers: headers(), signal: ctl.signal, cache: "no-store" });
        if (!resp.ok) {
          const body = await resp.json().catch(() => null);
          setStream(`refused: ${resp.status} ${body ? body.code : ""}`, false);
        } else {
          setStream("live", true);
          delay = 500;
          const reader = resp.body.getReader();
          const dec = new TextDecoder();
          let buf = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += dec.decode(value, { stream: true });
            let cut;
            while ((cut = buf.indexOf("\n\n")) >= 0) {
              const block = buf.slice(0, cut);
              buf = buf.slice(cut + 2);
              const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
              if (data) {
                try { addEvent(JSON.parse(data)); } catch (_) { /* a partial or foreign message: skip */ }
              }
            }
          }
          setStream("reconnecting", false);
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
        setStream("reconnecting", false);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }

  // ---- wiring -------------------------------------------------------------

  function restart() {
    state.cursors = [null];
    refreshStatus();
    refreshPage();
    openStream();
  }

  document.addEventListener("DOMContentLoaded", () => {
    window.fenced.authForm(restart);
    window.fenced.pagedListing(state, restart, refreshPage);
    for (const b of document.querySelectorAll(".tabs button")) {
      b.addEventListener("click", () => {
        for (const o of document.querySelectorAll(".tabs button")) o.classList.toggle("active", o === b);
        state.tab = b.dataset.tab;
        restart();
      });
    }
    setInterval(refreshStatus, POLL_MS);
    setInterval(refreshPage, POLL_MS);
    setInterval(tick, 200);
    restart();
  });
})();
