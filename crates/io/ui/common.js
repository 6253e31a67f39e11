// Helpers shared by the replica's console and the store's console
// (served by both at /ui/common.js, before each page's own script).
//
// Names and keys are user data: they are only ever set as text, through
// `el` and `textContent`, never as HTML. Every call carries the bearer token
// typed into the page (kept in the tab's session storage), so the page shows
// what the API lets that caller read and nothing else.
"use strict";

window.fenced = (function () {
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem("fenced.token") || "";

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") e.className = v; else if (k === "dataset") Object.assign(e.dataset, v); else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c === null || c === undefined ? "" : (c instanceof Node ? c : String(c)));
    return e;
  }

  function headers() {
    return token ? { Authorization: "Bearer " + token } : {};
  }

  function showError(msg) {
    const e = $("error");
    e.hidden = !msg;
    e.textContent = msg || "";
  }

  // GET a JSON answer; a refusal becomes an Error that says what to do.
  async function api(path) {
    const resp = await fetch(path, { headers: headers(), cache: "no-store" });
    const body = await resp.json().catch(() => null);
    if (!resp.ok) {
      const what = body && body.code ? `${body.code}: ${body.message}` : `HTTP ${resp.status}`;
      const hint = resp.status === 401 ? " (enter a bearer token above)" : "";
      throw new Error(`${path.split("?")[0]} answered ${resp.status} ${what}${hint}`);
    }
    return body;
  }

  const us = (v) => (v === undefined || v === null ? "–" : v < 1000 ? `${v} µs` : `${(v / 1000).toFixed(1)} ms`);
  const ms = (v) => (v === undefined || v === null ? "–" : v < 1000 ? `${v} ms` : `${(v / 1000).toFixed(1)} s`);
  // A wall-clock time of day (UTC), to the millisecond.
  const time = (atMs) => new Date(atMs).toISOString().slice(11, 23);

  function dl(target, pairs) {
    target.replaceChildren(...pairs.map(([k, v]) => el("div", null, el("dt", null, k), el("dd", null, v))));
  }

  // The bearer-token form (#auth with #token): `onChange` runs after a new
  // token is taken.
  function authForm(onChange) {
    $("token").value = token;
    $("auth").addEventListener("submit", (ev) => {
      ev.preventDefault();
      token = $("token").value.trim();
      sessionStorage.setItem("fenced.token", token);
      onChange();
    });
  }

  // A paged listing filtered by a prefix, as both consoles have: `state`
  // holds `prefix`, `cursors` (the first page's is null) and `next`; the
  // #prefix input restarts the listing 250 ms after typing stops, and #next
  // and #prev move through pages by calling `refreshPage`.
  function pagedListing(state, restart, refreshPage) {
    let typing = null;
    $("prefix").addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => { state.prefix = $("prefix").value; restart(); }, 250);
    });
    $("next").addEventListener("click", () => { if (state.next) { state.cursors.push(state.next); refreshPage(); } });
    $("prev").addEventListener("click", () => { if (state.cursors.length > 1) { state.cursors.pop(); refreshPage(); } });
  }

  return Object.freeze({ $, el, headers, showError, api, us, ms, time, dl, authForm, pagedListing });
})();
