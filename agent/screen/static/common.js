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

// GET (no body) or POST JSON; the answer's JSON, or {} when it has none.
async function api(path, body) {
  const r = await fetch(path, body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" },
                                                          body: JSON.stringify(body) });
  let data = {};
  try { data = await r.json(); } catch { /* an empty or non-JSON answer */ }
  return { ok: r.ok, status: r.status, data };
}

// POST for an action whose effect comes back through the view: a refusal is only logged.
async function post(path, body) {
  const r = await api(path, body);
  if (!r.ok) console.warn(path, r.status, r.data);
  return r;
}
