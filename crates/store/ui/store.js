// The fenced store's console: read-only, vanilla JS, no build step; the
// helpers (elements built as text, the token form, JSON calls) are shared
// with the replica's console in /ui/common.js.
//
// Per key: the highest token the store accepted, the fence a write must
// reach (its lock's, if higher), and the last writes it refused, with who
// sent them. Everything comes from GET /v1/keys and GET /v1/refusals with
// the caller's credentials, so a caller sees only the keys it may read.
"use strict";

(function () {
  const PAGE = 100;            // keys per page: the table stays small at any size
  const FEED = 100;            // refusals listed, newest first
  const POLL_MS = 1000;
  const { $, el, showError, api, time } = window.fenced;

  const state = { prefix: "", cursors: [null], next: null };

  // What a refusal says, in one line: status and code, the operation and
  // key, the token against the fence, and who sent it.
  function refusalParts(r, withKey) {
    const parts = [el("span", { class: "k" }, `${r.status} ${r.code}`)];
    if (withKey) parts.push(`${r.op} `, el("span", { class: "key" }, r.key), " ");
    if (r.presented !== undefined && r.current !== undefined) parts.push(`token ${r.presented} < fence ${r.current} `);
    else if (r.presented !== undefined) parts.push(`token ${r.presented} `);
    parts.push("from ", el("span", { class: "sender", title: r.authenticated ? "authenticated identity" : "peer address (not authenticated)" }, r.sender));
    if (r.client) parts.push(` (says client ${r.client})`);
    return parts;
  }

  function refusalItem(r, withKey) {
    return el("li", { class: "refusal code-" + r.code, dataset: { code: r.code, key: r.key }, title: r.message },
      el("time", null, time(r.at_ms)), ...refusalParts(r, withKey));
  }

  async function refreshHealth() {
    try {
      const h = await api("/v1/health");
      const mode = h.unsafe_no_fencing ? el("span", { class: "follower", id: "mode" }, "UNSAFE: no fencing")
        : h.trust_unsigned_tokens ? el("span", { class: "follower", id: "mode" }, "unsigned tokens trusted")
        : el("span", { class: "leader", id: "mode" }, "fenced");
      $("view").replaceChildren("Store at ", el("span", { id: "view-addr" }, location.host), " · ", mode);
    } catch (e) {
      showError(e.message);
    }
  }

  function listPath() {
    const q = new URLSearchParams();
    const after = state.cursors[state.cursors.length - 1];
    if (state.prefix) q.set("prefix", state.prefix);
    if (after !== null) q.set("after", after);
    q.set("limit", PAGE);
    return "/v1/keys?" + q;
  }

  function renderKeys(page) {
    const rows = page.keys.map((k) => el("tr", { dataset: { key: k.key } },
      el("td", null, k.key, k.deleted ? el("span", { class: "badge" }, "deleted") : ""),
      el("td", null, k.lock),
      el("td", { class: "num token" }, k.max_token),
      el("td", { class: "num" }, k.fence),
      el("td", { class: "num" }, k.version),
      el("td", { class: "refused" }, k.refused.length ? el("ol", { class: "last" }, ...k.refused.map((r) => refusalItem(r, false))) : "")));
    if (!rows.length) rows.push(el("tr", null, el("td", { class: "empty", colspan: 6 }, state.prefix ? "no key under this prefix (or none you may read)" : "no key yet, or none you may read")));
    $("keys-body").replaceChildren(...rows);
    const first = (state.cursors.length - 1) * PAGE;
    const total = page.total_exact ? page.total : `${page.total}+`;
    $("range").textContent = page.keys.length ? `${first + 1}–${first + page.keys.length} of ${total}` : `0 of ${total}`;
    state.next = page.next;
    $("next").disabled = !page.next;
    $("prev").disabled = state.cursors.length < 2;
  }

  async function refresh() {
    try {
      const [keys, refused] = await Promise.all([api(listPath()), api("/v1/refusals?limit=" + FEED + (state.prefix ? "&prefix=" + encodeURIComponent(state.prefix) : ""))]);
      renderKeys(keys);
      const items = refused.refusals.map((r) => refusalItem(r, true));
      if (!items.length) items.push(el("li", { class: "empty" }, "no refused write (of a key you may read) since the store started"));
      $("refusals").replaceChildren(...items);
      $("kept").textContent = `last ${refused.kept} kept`;
      showError("");
    } catch (e) {
      showError(e.message);
    }
  }

  function restart() {
    state.cursors = [null];
    refreshHealth();
    refresh();
  }

  document.addEventListener("DOMContentLoaded", () => {
    window.fenced.authForm(restart);
    window.fenced.pagedListing(state, restart, refresh);
    setInterval(refresh, POLL_MS);
    restart();
  });
})();
