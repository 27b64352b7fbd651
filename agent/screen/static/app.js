// Renders the view document the agent pushes over SSE. All data goes in through textContent,
// so nothing a device, a bundle or a customer typed can become markup.
"use strict";
let last = null;
let pendingView = null;     // an update held back while someone types; applied when they leave the field
document.addEventListener("focusout", () => { if (pendingView) { const v = pendingView; pendingView = null; render(v); } });

function photo(src, caption, testid) {
  return el("figure", {}, src ? el("img", { src, alt: caption, "data-testid": testid })
                              : el("div", { class: "nophoto", "data-testid": testid, text: t("no_snapshot") }),
            el("figcaption", { text: caption }));
}

function renderPrompt(v) {
  const box = $("#prompt");
  box.replaceChildren();
  const p = v.prompts[0];
  box.className = p && p.urgent ? "urgent" : "";
  box.append(el("span", { class: "speaker", "aria-label": t("voice") }),
             el("div", {}, el("div", { "data-testid": "prompt-text", text: p ? p.text : t("waiting") }),
                el("div", { class: "history", text: v.prompts.slice(1, 3).map((x) => x.text).join(" · ") })));
}

function renderHandover(v) {
  const root = $("#handover");
  root.replaceChildren();
  const h = v.handover;
  if (!h) return;
  const steps = el("div", { class: "steps", "data-testid": "steps" });
  const cur = h.steps.indexOf(h.step);
  h.steps.forEach((s, i) => steps.append(el("div", {
    class: "step" + (i < cur ? " done" : "") + (i === cur ? " current" : ""),
    "data-testid": `step-${s}`, "data-current": i === cur ? "true" : null,
    text: `${i + 1}. ${t("step." + s)}` })));
  const card = el("div", { class: "card" + (h.risk ? " risk" : "") }, steps);
  card.append(el("div", { class: "vehicle" },
    el("span", { class: "plate", "data-testid": "plate", text: h.plate }),
    el("span", { text: `${t("task")} ${h.task_id} · ${t("kind." + h.kind)}` }),
    el("span", { text: h.arrived_at ? `${t("arrived_at")} ${h.arrived_at}${h.manual ? " (" + t("manual") + ")" : ""}` : "" })));
  if (h.risk) card.append(riskPanel(v, h));
  const people = el("div", { class: "row", "data-testid": "escorts" });
  for (const p of h.escorts) {
    people.append(el("div", { class: "person" + (p.verified ? " ok" : ""), "data-testid": `escort-${p.person_id}`,
                              "data-verified": p.verified ? "true" : "false" },
      el("div", { class: "photos" }, photo(p.photo, t("enrolled_photo"), "enrolled-photo"),
         photo(p.snapshot, t("live_snapshot"), "live-snapshot")),
      el("div", { class: "name", text: p.name }),
      el("div", {}, p.lead ? el("span", { class: "badge lead", text: t("lead") }) : null, " ",
         el("span", { class: "badge" + (p.verified ? " ok" : ""),
                      text: p.verified ? `${t("verified")} ${p.verified_at}` : t("not_verified") })),
      el("div", { class: "muted", text: `${t("company")}: ${p.company}` })));
  }
  card.append(el("h2", { text: t("escorts") }), people);
  if (["box_handover", "officer_confirmation", "sign_off"].includes(h.step) || h.counted) {
    const boxes = el("div", { class: "boxes", "data-testid": "boxes" });
    for (const b of h.boxes) boxes.append(el("div", { class: "box" + (b.read ? " read" : ""),
      "data-testid": `box-${b.box_id}`, "data-read": b.read ? "true" : "false", text: (b.read ? "✓ " : "") + b.box_id }));
    card.append(el("h2", { text: t("boxes") }),
                el("div", { class: "count", "data-testid": "box-count",
                            text: `${t("counted")} ${h.counted} / ${t("expected")} ${h.planned}` }), boxes);
  }
  if (h.officer) {
    card.append(el("h2", { text: t("officer") }),
      el("div", { class: "row" }, el("div", { class: "person ok", "data-testid": "officer" },
        el("div", { class: "photos" }, photo(h.officer.photo, t("enrolled_photo"), "officer-photo")),
        el("div", { class: "name", text: h.officer.name }),
        el("span", { class: "badge ok", text: `${t("verified")} ${h.officer.verified_at}` }))));
  }
  root.append(card);
}

// Risk handling (风险处置): the officer picks a disposition; the next officer finger signs it.
let dispositionCode = null;
function riskPanel(v, h) {
  const panel = el("div", { class: "card risk", "data-testid": "risk" }, el("h2", { text: t("risk") }),
    ...h.open_alarms.map((a) => el("div", { class: "alarm", "data-testid": `open-alarm-${a.kind}`, text: a.text })));
  if (v.pending_auth) return panel;
  const text = el("input", { type: "text", class: "touch wide", maxlength: "500", "data-testid": "disposition-text",
                             placeholder: t("disposition.text") });
  const codes = el("div", { class: "grid" }, ...v.disposition_codes.map((c) => el("button", {
    class: "touch choice" + (c === dispositionCode ? " chosen" : ""), "data-testid": `disposition-${c}`, text: t("disposition." + c),
    onclick: (e) => { dispositionCode = c; codes.querySelectorAll(".choice").forEach((b) => b.classList.remove("chosen"));
                      e.target.classList.add("chosen"); } })));
  const send = (resolution) => () => {
    if (!dispositionCode) { alert(t("disposition.choose")); return; }
    post("/api/disposition", { code: dispositionCode, text: text.value, resolution });
    dispositionCode = null;
  };
  panel.append(el("h3", { text: t("disposition.choose") }), codes, text,
    el("div", { class: "grid" },
      el("button", { class: "touch primary", "data-testid": "disposition-continue", onclick: send("continue"), text: t("disposition.continue") }),
      el("button", { class: "touch danger", "data-testid": "disposition-abort", onclick: send("abort"), text: t("disposition.abort") })));
  return panel;
}

// A staff action waiting for an officer: finger at either reader, or a password where the site allows it.
function renderPending(v) {
  const root = $("#pending");
  root.replaceChildren();
  if (!v.pending_auth && !(v.handover && v.handover.step === "officer_confirmation" && v.password_allowed)) return;
  const card = el("div", { class: "card pending", "data-testid": "pending-auth" });
  if (v.pending_auth) card.append(el("h2", { text: `${t("waiting_officer")} · ${t({ disposition: "risk", enrolment: "enrol.title" }[v.pending_auth.purpose] || "manual_arrival")}` }));
  if (v.password_allowed) {
    const who = el("select", { class: "touch", "data-testid": "password-officer" },
      ...v.officers.map((o) => el("option", { value: o.person_id, text: o.name })));
    const pw = el("input", { type: "password", class: "touch", "data-testid": "password-input", placeholder: t("password"),
                             autocomplete: "off" });
    card.append(el("div", { class: "grid" }, who, pw,
      el("button", { class: "touch primary", "data-testid": "password-submit", text: t("password_confirm"),
                     onclick: () => { post("/api/password", { person_id: who.value, password: pw.value }); pw.value = ""; } })));
  }
  if (v.pending_auth) card.append(el("button", { class: "touch", "data-testid": "pending-cancel", text: t("cancel"),
                                                onclick: () => post("/api/cancel", {}) }));
  root.append(card);
}

function renderReport(v) {
  const root = $("#report");
  root.replaceChildren();
  if (!v.report) return;
  root.append(el("div", { class: "card" }, el("h2", { text: `${t("report")} · ${t("status." + v.report.outcome)}` }),
    el("p", { class: v.report.printed ? "printed" : "alarm", "data-testid": "report-printed",
              text: t(v.report.printed ? "printed" : "print_failed") }),
    el("div", { class: "receipt", "data-testid": "report-text", text: [v.report.title, ...v.report.lines].join("\n") })));
}

function renderAlarms(v) {
  const root = $("#alarms");
  root.replaceChildren();
  // a handover's own alarms are in its risk panel; these are the site's (wrong or unknown truck)
  for (const a of v.site_alarms.slice(0, 2)) root.append(el("div", { class: "alarm", "data-testid": `alarm-${a.kind}`, text: `${a.at} ${a.text}` }));
}

function renderTasks(v) {
  const root = $("#tasks");
  root.replaceChildren();
  const table = el("table", { class: "tasks" }, el("tr", {},
    ...["task", "kind", "window", "vehicle", "escorts", "boxes", "status"].map((k) => el("th", { text: t(k) })),
    el("th", {})));
  const manual = (x) => (!v.handover && !v.pending_auth && x.status === "planned")
    ? el("button", { class: "touch", "data-testid": `manual-arrival-${x.task_id}`, text: t("manual_arrival"),
                     onclick: () => post("/api/manual-arrival", { task_id: x.task_id }) }) : null;
  for (const x of v.tasks) table.append(el("tr", { "data-testid": `task-${x.task_id}` },
    el("td", { text: x.task_id }), el("td", { text: t("kind." + x.kind) }),
    el("td", { text: `${x.window_start}–${x.window_end}` }), el("td", { text: x.plate }),
    el("td", { text: x.escorts.join("、") }), el("td", { text: String(x.boxes) }),
    el("td", { class: "status-" + x.status, "data-testid": "task-status", text: t("status." + x.status) }),
    el("td", {}, manual(x))));
  // the complaint kiosk (SPEC §6) may take the screen while no handover runs
  const kiosk = !v.handover && !v.pending_auth ? el("button", { class: "touch", "data-testid": "kiosk-enter", text: t("kiosk.enter"),
                                                              onclick: () => post("/api/kiosk/enter", {}) }) : null;
  root.append(el("div", { class: "card" }, el("h2", { text: t("today_tasks") }, " ", kiosk),
                 v.tasks.length ? table : el("p", { text: t("no_tasks") })));
}

function renderSim(v) {
  const root = $("#sim");
  if (!v.sim) { root.hidden = true; return; }
  root.hidden = false;
  root.replaceChildren();
  const s = v.sim;
  const btn = (label, testid, fn, cls = "") => el("button", { class: "touch " + cls, "data-testid": testid, onclick: fn, text: label });
  const trucks = el("div", { class: "grid" }, ...s.trucks.map((x) =>
      btn(x.plate, `sim-truck-${x.plate}`, () => post("/api/sim/beacon", { beacon: x.beacon }))),
    btn(t("sim.stranger"), "sim-stranger", () => post("/api/sim/beacon", { beacon: s.stranger_beacon }), "warn"));
  const fingers = (station) => el("div", { class: "grid" },
    ...s.people.map((p) => btn(`${p.name} · ${t("sim.right")}`, `sim-${station}-${p.person_id}`,
                               () => post("/api/sim/finger", { station, slot: p.slot }))),
    ...s.people.filter((p) => p.duress_slot !== undefined).map((p) =>
        btn(`${p.name} · ${t("sim.duress")}`, `sim-${station}-${p.person_id}-duress`,
            () => post("/api/sim/finger", { station, slot: p.duress_slot }), "warn")),
    btn(t("sim.unknown"), `sim-${station}-unknown`, () => post("/api/sim/finger", { station, slot: null }), "warn"),
    btn(t("sim.failed"), `sim-${station}-failed`, () => post("/api/sim/finger", { station, failed: true }), "warn"));
  const tags = el("div", { class: "grid" }, ...s.tags.map((b) =>
      btn(b.box_id, `sim-tag-${b.box_id}`, () => post("/api/sim/tag", { tag: b.tag }))),
    btn(t("sim.unknown_tag"), "sim-tag-unknown", () => post("/api/sim/tag", { tag: s.unknown_tag }), "warn"));
  const clock = el("div", { class: "grid" }, ...v.tasks.map((x) => btn(`${x.task_id} ${x.window_start}`, `sim-clock-${x.task_id}`,
      () => post("/api/sim/clock", { offset_minutes: Math.round((Date.parse(x.window_start_iso) - Date.now()) / 60000) + 5 }))),
    btn(t("sim.clock_now"), "sim-clock-now", () => post("/api/sim/clock", { offset_minutes: 0 })));
  root.append(el("div", { class: "card" }, el("h2", { text: t("sim.title") }),
    el("h3", { text: t("sim.clock") }), clock,
    el("h3", { text: t("sim.truck") }), trucks,
    el("h3", { text: t("sim.door_finger") }), fingers("door"),
    el("h3", { text: t("sim.counter_finger") }), fingers("counter"),
    el("h3", { text: t("sim.tag") }), tags));
}

function renderHeader(v) {
  $("#site").textContent = `${t("site")}: ${v.site.name}`;
  const door = $("#door");
  door.className = v.door ? "open" : "";
  door.textContent = `${t("door")}: ${v.door ? t("door_open") : t("door_closed")}`;
  door.dataset.raised = v.door ? "true" : "false";
  $("#lang").textContent = t("language");
  $("#clock").textContent = v.now.slice(11, 16);
  $("#health").replaceChildren(el("span", { text: t("devices") + ":" }), ...v.health.map((h) =>
    el("span", { class: h.state, title: h.error || "", "data-testid": `health-${h.device}`, text: h.text || `${t("device." + h.device)} ${t("health." + h.state)}` })));
}

// disposition notes and officer passwords are typed on the screen itself: it has no keyboard
const keyboard = createKeyboard({ label: t });

async function render(v) {
  if (v.mode === "kiosk") { location.replace("/kiosk"); return; }
  if (await loadLabels(v.lang, "title")) keyboard.relabel();
  last = v;
  renderHeader(v); renderPrompt(v); renderAlarms(v); renderPending(v); renderHandover(v); renderReport(v); renderTasks(v); renderSim(v);
  renderEnrolment(v);
  document.body.dataset.version = v.version;
}

$("#lang").addEventListener("click", () => post("/api/language", { lang: lang === "zh-CN" ? "en" : "zh-CN" }));

function connect() {
  const es = new EventSource("/api/events");
  es.onmessage = (m) => {
    const v = JSON.parse(m.data);
    if (last && v.version === last.version && v.lang === last.lang) return;
    const typing = document.activeElement && ["INPUT", "SELECT"].includes(document.activeElement.tagName);
    if (typing && last && last.handover && v.handover && last.handover.step === v.handover.step && last.handover.risk === v.handover.risk
        && !!last.pending_auth === !!v.pending_auth) { pendingView = v; return; }
    render(v);
  };
  es.onerror = () => { es.close(); setTimeout(connect, 1000); };
}
connect();
