// The monitoring centre's board: alarms pushed at their commit (Server-Sent Events), spoken through an
// audio element (a WAV espeak-ng rendered at head office), acknowledged by a monitor with a note.
"use strict";

const alarms = new Map();           // "device|id" -> alarm
const key = (a) => `${a.device}|${a.id}`;

function testId(a) { return `alarm-${a.device}-${a.seq}`; }

function stateCell(a) {
  if (a.ack) {
    return el("td", { "data-testid": "ack-state" },
      el("div", { text: T("ack_done", { name: a.ack.name, note: a.ack.note }) }),
      a.silent ? el("div", { class: "note", text: T("ack_silent") }) : null);
  }
  if (!me.may_ack) return el("td");
  const input = el("input", { placeholder: T("ack_note_placeholder"), "aria-label": T("ack_note"),
                              "data-testid": "ack-note", maxlength: 200 });
  const form = el("form", { class: "ack-form", hidden: true,
    onsubmit: async (e) => {
      e.preventDefault();
      if (!input.value.trim()) return;
      const done = await api("/api/ack", { device: a.device, id: a.id, note: input.value });
      a.ack = done.ack;
      render();
    } }, input,
    el("button", { type: "submit", "data-testid": "ack-submit", text: T("ack_submit") }),
    el("button", { type: "button", text: T("ack_cancel"), onclick: () => { form.hidden = true; open.hidden = false; } }));
  const open = el("button", { class: "ack", type: "button", "data-testid": "ack-open", text: T("ack_button"),
    onclick: () => { open.hidden = true; form.hidden = false; input.focus(); } });
  return el("td", {}, open, form);
}

function row(a) {
  return el("tr", { class: `alarm${a.ack ? " acked" : ""}${a.silent ? " silent" : ""}${a.fresh ? " fresh" : ""}`,
                    "data-testid": testId(a), "data-kind": a.kind, "data-acked": a.ack ? "true" : "false" },
    el("td", { text: a.time }), el("td", { "data-testid": "site", text: a.site }),
    el("td", { "data-testid": "kind", text: a.kind_text }), el("td", { text: a.device }),
    stateCell(a),
    el("td", {}, el("button", { type: "button", class: "play", "data-testid": "play", text: T("voice_play"),
                                onclick: () => speak(a) })));
}

function render() {
  const list = [...alarms.values()].sort((x, y) => (y.ts > x.ts ? 1 : y.ts < x.ts ? -1 : 0));
  // keep an open acknowledgement form (and what is being typed) when another alarm arrives
  const typing = document.activeElement && document.activeElement.closest("tr.alarm");
  if (typing) {
    const keep = typing.getAttribute("data-testid");
    const rows = list.map((a) => (testId(a) === keep && !a.ack ? typing : row(a)));
    document.getElementById("alarm-rows").replaceChildren(...rows);
    typing.querySelector("input")?.focus();
  } else {
    document.getElementById("alarm-rows").replaceChildren(...list.map(row));
  }
  document.getElementById("alarms-empty").hidden = list.length > 0;
}

function voiceUrl(a) {
  return `/api/voice?device=${encodeURIComponent(a.device)}&id=${encodeURIComponent(a.id)}`;
}

function speak(a) {
  const audio = document.getElementById("voice");
  audio.src = voiceUrl(a);
  audio.setAttribute("data-alarm", testId(a));
  audio.play().catch(() => {});     // a browser may want a click first: the row's button plays it again
}

async function loadAlarms() {
  alarms.clear();
  for (const a of await api("/api/alarms")) alarms.set(key(a), a);
  render();
}

async function loadDevices() {
  const list = await api("/api/devices");
  document.getElementById("device-rows").replaceChildren(...list.map((d) =>
    el("tr", { class: `${d.quiet ? "quiet" : ""} ${d.state}`, "data-testid": `device-${d.device}`,
               "data-quiet": d.quiet ? "true" : "false", "data-state": d.state },
      el("td", { text: d.device }), el("td", { text: d.site }),
      el("td", { "data-testid": "state", text: d.state_text }),
      el("td", { "data-testid": "backlog", text: String(d.backlog) }),
      el("td", { text: d.disk_free == null ? "" : `${(d.disk_free / 2 ** 30).toFixed(1)} GiB` }),
      el("td", { "data-testid": "drivers", text: d.drivers_text }),
      el("td", { "data-testid": "last-seen" }, el("div", { text: d.last_seen || "" }),
        d.quiet ? el("div", { class: "quiet-text", text: d.quiet_text }) : null))));
  document.getElementById("devices-empty").hidden = list.length > 0;
}

// route skips judged at head office (hq/web/routes.py): a banner over the alarms while a route has one
const skips = new Map();            // task_id -> route
function noteRoute(r) {
  if (r.skipped.length) skips.set(r.task_id, r); else skips.delete(r.task_id);
  const box = document.getElementById("route-skips");
  box.replaceChildren(...[...skips.values()].map((s) => el("a", { href: "/routes", class: "route-skip",
    "data-testid": "board-route-skip", "data-route": s.route,
    text: T("routes_skip", { plate: s.plate, route: s.route, sites: s.skipped_names.join(T("routes_list_sep")) }) })));
  box.hidden = skips.size === 0;
}

function listen() {
  const source = new EventSource(`/api/events?lang=${encodeURIComponent(me.lang)}`);
  const lost = document.getElementById("lost");
  source.addEventListener("open", () => { if (!lost.hidden) { lost.hidden = true; loadAlarms(); } });
  source.addEventListener("error", () => { lost.hidden = false; });
  source.addEventListener("alarm", (e) => {
    const a = JSON.parse(e.data);
    a.fresh = true;
    if (!alarms.has(key(a))) { alarms.set(key(a), a); render(); speak(a); }
  });
  source.addEventListener("announce", (e) => {     // only to users who turned that kind on (hq/web/routes.py)
    const a = JSON.parse(e.data);
    const list = document.getElementById("announcements");
    list.prepend(el("li", { "data-testid": "announcement", "data-what": a.what, text: a.text }));
    while (list.children.length > 5) list.lastChild.remove();
    const audio = document.getElementById("voice");
    audio.src = a.voice;
    audio.setAttribute("data-announce", a.id);
    audio.play().catch(() => {});
  });
  source.addEventListener("route", (e) => noteRoute(JSON.parse(e.data)));
  source.addEventListener("ack", (e) => {
    const done = JSON.parse(e.data);
    const a = alarms.get(key(done));
    if (a) { a.ack = done.ack; render(); }
  });
}

async function voiceSettings() {
  const boxes = { confirmation: document.getElementById("voice-confirmation"),
                  completion: document.getElementById("voice-completion") };
  const show = (settings) => { for (const [k, box] of Object.entries(boxes)) { box.checked = settings[k]; box.disabled = false; } };
  show(await api("/api/voice/settings"));
  for (const box of Object.values(boxes)) {
    box.addEventListener("change", async () => {
      for (const b of Object.values(boxes)) b.disabled = true;
      show(await api("/api/voice/settings", { confirmation: boxes.confirmation.checked,
                                              completion: boxes.completion.checked }));
    });
  }
}

async function main() {
  me = await api(`/api/me?lang=${document.documentElement.lang}`);
  document.querySelector("[data-testid=who]").textContent = `${me.name} · ${me.role_text}`;
  document.getElementById("logout").addEventListener("click", async () => {
    await api("/logout", {}); location.href = "/login";
  });
  listen();
  await loadAlarms();
  await loadDevices();
  await voiceSettings();
  for (const r of (await api("/api/routes")).routes) noteRoute(r);
  setInterval(loadDevices, 5000);
  document.body.setAttribute("data-ready", "true");
}

main();
