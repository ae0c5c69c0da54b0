// The dashboard's script, part 1 of 5: constants, DOM helpers, formatting, the admin API
// (bearer token, JSON POSTs). The parts are concatenated into one inline <script> by
// src/admin/dashboard.rs, in the order util, history, charts, render, main.

const POLL_MS = 2000;
const KEEP_MS = 10 * 60 * 1000;   // the server keeps 10 min of history; so does the page
const MIN_WINDOW_MS = 30 * 1000;  // charts show at least the last 30 s
const EVENTS_SHOWN = 30;
const RECENT_MS = 10 * 1000;      // the rates shown as numbers are means over this
const TOKEN_KEY = 'bascule.admin-token';
const DEMO_MODES = ['ok', 'refuse', 'hang', '503'];
// One colour per upstream, in tier order.
const PALETTE = ['#0969da', '#8250df', '#1a7f37', '#bf8700', '#e16f24', '#0598bc', '#bf3989',
  '#57606a'];

const app = { status: null, demo: null, demoNext: 0, timer: 0 };
const shownSig = new WeakMap(); // element -> signature of the data it was last built from

// ---------- DOM helpers ----------

/** An element with attributes (`class`, `data-*`, `on*` handlers) and children. */
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  el.append(...kids.flat().filter((k) => k !== null && k !== undefined));
  return el;
}

/** An SVG element. */
function svg(tag, attrs) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}

const $ = (id) => document.getElementById(id);

/**
 * Keeps `container`'s children in step with `items`: one child per key, created once,
 * updated in place every time, reordered as needed, removed when its item is gone.
 */
function sync(container, items, key, create, update) {
  const old = new Map([...container.children].map((el) => [el.dataset.key, el]));
  let prev = null;
  for (const item of items) {
    const k = key(item);
    let el = old.get(k);
    old.delete(k);
    if (!el) { el = create(item); el.dataset.key = k; }
    update(el, item);
    const want = prev ? prev.nextSibling : container.firstChild;
    if (el !== want) container.insertBefore(el, want);
    prev = el;
  }
  old.forEach((el) => el.remove());
}

/** "12 s ago" for an RFC 3339 time; elements with data-at are refreshed every tick. */
function ago(at) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(at)) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}
const age = (at) => h('span', { class: 'muted', 'data-at': at, title: at }, ago(at));
function refreshAges() {
  document.querySelectorAll('[data-at]').forEach((el) => { el.textContent = ago(el.dataset.at); });
}
const clock = (at) => new Date(at).toTimeString().slice(0, 8);
const fmtRate = (r) => (r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2));
/** Milliseconds, or a dash for none. */
const fmtMs = (ms) => (ms === null || ms === undefined ? '–'
  : `${ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2)} ms`);

let noticeTimer = 0;
function notice(text, isError) {
  const n = $('notice');
  n.textContent = text;
  n.className = isError ? 'error' : '';
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { n.hidden = true; }, isError ? 8000 : 3000);
}

// ---------- API ----------

class AuthNeeded extends Error {}

/** fetch() on the admin API with the bearer token, if one was given. */
async function api(path, init = {}) {
  const headers = new Headers(init.headers || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.set('Authorization', `Bearer ${token}`);
  const r = await fetch(path, { ...init, headers, cache: 'no-store' });
  if (r.status === 401) throw new AuthNeeded();
  return r;
}

/** POST a JSON body; reports the outcome and refreshes at once. */
async function post(path, body) {
  try {
    const r = await api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body) });
    const j = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(j.error || `HTTP ${r.status}`);
    notice(`${path}: done`);
  } catch (e) {
    if (e instanceof AuthNeeded) askToken('The admin API wants a token.');
    else notice(`${path}: ${e.message}`, true);
  }
  tick();
}

/** The optional reason for an operator action; null when the user cancelled. */
function askReason(what) {
  const r = window.prompt(`Reason for: ${what} (optional)`, '');
  if (r === null) return null;
  return r.trim() ? { reason: r.trim() } : {};
}

function askToken(msg) {
  $('login-panel').hidden = false;
  $('login-msg').textContent = msg;
  $('live').textContent = 'waiting for the admin token';
  $('token').focus();
}

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
  $('token').value = '';
  $('login-panel').hidden = true;
  tick();
});

