// Helpers shared by the handover screen (app.js) and the complaint kiosk (kiosk.js). Classic scripts share
// one global scope, so the labels (L, lang) declared here are the page's.
"use strict";
let L = {};            // UI labels for the current language
let lang = null;

const $ = (sel) => document.querySelector(sel);

// Builds an element; text goes in through textContent only, so no data can become markup.
function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k === "value") e.value = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k);
  return e;
}

// A label, with {name} placeholders filled from vars; a missing label shows its key so it is noticed.
const t = (key, vars = {}) => (L[key] ?? key).replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? "");

// Loads the labels of a language and relabels the [data-i18n] elements; true when the language changed.
async function loadLabels(next, titleKey) {
  if (next === lang) return false;
  L = await (await fetch(`/i18n/${next}.json`)).json();
  lang = next;
  document.documentElement.lang = next;
  document.title = t(titleKey);
  document.querySelectorAll("[data-i18n]").forEach((n) => (n.textContent = t(n.dataset.i18n)));
  return true;
}

// A request id for one intended action: the agent answers a repeated id with its first answer and does
// nothing again, so a double tap or a retry after a lost answer acts once.
function requestId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// GET (no body) or POST JSON with a request id (a fresh one unless the caller reuses one); the answer's JSON,
// or {} when it has none.
async function api(path, body, rid = requestId()) {
  const r = await fetch(path, body === undefined ? {} : { method: "POST", body: JSON.stringify(body),
                                                          headers: { "Content-Type": "application/json", "X-Request-Id": rid } });
  let data = {};
  try { data = await r.json(); } catch { /* an empty or non-JSON answer */ }
  return { ok: r.ok, status: r.status, data };
}

// POST for an action whose effect comes back through the view: a refusal is only logged.
async function post(path, body, rid) {
  const r = await api(path, body, rid);
  if (!r.ok) console.warn(path, r.status, r.data);
  return r;
}

// A button that acts once: disabled on the first tap, its action sent with one request id however often
// it is tapped; enabled again only if the action failed and the button is still on screen.
function actionButton(attrs, action) {
  let rid = requestId();
  const b = el("button", { ...attrs, onclick: async () => {
    if (b.disabled) return;
    b.disabled = true;
    let ok = false;
    try { ok = await action(rid); } finally {
      if (ok === false) { rid = requestId(); if (b.isConnected) b.disabled = false; }   // a refusal may be retried
    }
  } });
  return b;
}

// The header clock ticks on its own, on the terminal's time (the view's `now` less the page's clock).
let clockSkew = 0, clockNode = null;
function tickClock() {
  if (!clockNode || !lang) return;
  const d = new Date(Date.now() + clockSkew);
  clockNode.textContent = [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}
function syncClock(nowIso) {
  clockSkew = new Date(nowIso.slice(0, 19)).getTime() - Date.now();     // the terminal's wall time, read as local
  tickClock();
}
function startClock(node) {
  clockNode = node;
  setInterval(tickClock, 1000);
}
