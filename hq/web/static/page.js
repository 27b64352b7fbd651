// What the pages share (loaded before each page's own script): the signed-in user
// with the catalog (`me`), catalog lookup, element building (text only through textContent: nothing a
// user typed is ever parsed as HTML) and JSON calls that carry the CSRF token.
"use strict";

let me = null;
const T = (k, params = {}) => (me.text[k] || k).replace(/\{(\w+)\}/g, (_, p) => params[p] ?? "");

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== false && v !== null && v !== undefined) node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", "X-CSRF-Token": me.csrf },
  };
  const r = await fetch(path, { credentials: "same-origin", ...init });
  if (r.status === 401) { location.href = "/login"; throw new Error("login required"); }
  if (!r.ok) throw new Error(await r.text());
  return r.json();
}

// the header: who is signed in, and signing out
function header() {
  document.querySelector("[data-testid=who]").textContent = `${me.name} · ${me.role_text}`;
  document.getElementById("logout").addEventListener("click", async () => {
    await api("/logout", {}); location.href = "/login";
  });
}
