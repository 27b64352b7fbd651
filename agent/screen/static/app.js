// Renders the view document the agent pushes over SSE. All data goes in through textContent,
// so nothing a device, a bundle or a customer typed can become markup.
//
// One step, one screen: the bar at the top says what to do now (from the state, never a stale prompt) with
// the latest feedback under it; the current step fills the rest; finished steps shrink to thumbnails. The
// idle screen faces the public and shows nothing of the escort schedule: that needs a staff credential.
"use strict";
let last = null;
let pendingView = null;     // an update held back while someone types; applied when they leave the field
document.addEventListener("focusout", () => { if (pendingView) { const v = pendingView; pendingView = null; render(v); } });

function photo(src, caption, testid) {
  return el("figure", {}, src ? el("img", { src, alt: caption, "data-testid": testid })
                              : el("div", { class: "nophoto", "data-testid": testid, text: t("no_snapshot") }),
            el("figcaption", { text: caption }));
}

// --- the bar: what to do now, and the latest feedback ---
function renderPrompt(v) {
  const bar = $("#prompt");
  const risk = !!(v.handover && v.handover.risk) || v.instruction.tone === "risk";
  bar.className = "tone-" + v.instruction.tone + (risk ? " risk" : "");
  $("#instruction").textContent = v.instruction.text;
  const p = v.prompts[0];
  // the feedback of the latest event only (its decisions' prompts), never an older event's
  const batch = v.prompts.slice(1, 3).filter((x) => x.latest).map((x) => x.text);
  $("#feedback").replaceChildren(...[
    el("span", { class: "speaker", "aria-label": t("voice") }),
    el("span", { class: "fb-text" + (p && p.urgent ? " urgent" : ""), "data-testid": "prompt-text", text: p ? p.text : t("waiting") }),
    batch.length ? el("span", { class: "fb-more", text: batch.reverse().join(" · ") }) : null,
    p ? el("span", { class: "fb-at", text: p.at }) : null].filter(Boolean));
}

// --- the handover: one card, the current step's controls first ---
function thumb(p) {
  return el("div", { class: "thumb" + (p.verified ? " ok" : ""), "data-testid": `escort-${p.person_id}`,
                     "data-verified": p.verified ? "true" : "false" },
    p.snapshot || p.photo ? el("img", { src: p.snapshot || p.photo, alt: p.name }) : null,
    el("span", { class: "name", text: p.name }),
    el("span", { class: "empno", "data-testid": "employee-no", text: t("person.employee_no", { no: p.employee_no }) }),
    el("span", { class: "tick", text: p.verified ? `✓ ${p.verified_at.slice(0, 5)}` : t("not_verified") }),
    validity(p));
}

function escortCard(p) {
  return el("div", { class: "person" + (p.verified ? " ok" : ""), "data-testid": `escort-${p.person_id}`,
                     "data-verified": p.verified ? "true" : "false" },
    el("div", { class: "photos" }, photo(p.photo, t("enrolled_photo"), "enrolled-photo"),
       photo(p.snapshot, t("live_snapshot"), "live-snapshot")),
    el("div", { class: "who" }, el("span", { class: "name", text: p.name }),
       p.lead ? el("span", { class: "badge lead", text: t("lead") }) : null,
       el("span", { class: "empno", "data-testid": "employee-no", text: t("person.employee_no", { no: p.employee_no }) })),
    el("div", { class: "badge" + (p.verified ? " ok" : ""), text: p.verified ? `${t("verified")} ${p.verified_at}` : t("not_verified") }),
    el("div", { class: "muted", text: `${t("company")}: ${p.company}` }),
    validity(p));
}

// an enrolment near its end says so on the card (staff have it renewed before it lapses)
function validity(p) {
  return p.valid_until ? el("span", { class: "badge warn", "data-testid": "valid-until",
                                      text: t("person.valid_until_soon", { day: p.valid_until, n: p.days_left }) }) : null;
}

function boxesPanel(h) {
  const boxes = el("div", { class: "boxes", "data-testid": "boxes" });
  for (const b of h.boxes) boxes.append(el("div", { class: "box" + (b.read ? " read" : ""),
    "data-testid": `box-${b.box_id}`, "data-read": b.read ? "true" : "false", text: (b.read ? "✓ " : "") + b.box_id }));
  return el("div", { class: "boxpanel" },
    el("div", { class: "count", "data-testid": "box-count", text: `${t("counted")} ${h.counted} / ${t("expected")} ${h.planned}` }),
    boxes);
}

function renderHandover(v) {
  const root = $("#handover");
  root.replaceChildren();
  const h = v.handover;
  if (!h) return;
  const cur = h.steps.indexOf(h.step);
  const steps = el("div", { class: "steps", "data-testid": "steps" }, ...h.steps.map((s, i) => el("div", {
    class: "step" + (i < cur ? " done" : "") + (i === cur ? " current" : ""),
    "data-testid": `step-${s}`, "data-current": i === cur ? "true" : null },
    el("span", { class: "n", text: i < cur ? "✓" : String(i + 1) }), el("span", { class: "label", text: t("step." + s) }))));
  const vehicle = el("div", { class: "vehicle" },
    el("span", { class: "plate", "data-testid": "plate", text: h.plate }),
    el("span", { text: `${h.task_id} · ${t("kind." + h.kind)}` }),
    h.arrived_at ? el("span", { class: "muted", text: `${t("arrived_at")} ${h.arrived_at.slice(0, 5)}${h.manual ? " (" + t("manual") + ")" : ""}` }) : null,
    h.route_unverified && h.route_unverified.length   // earlier stops unreported (offline): said, not blocking
      ? el("span", { class: "badge warn", "data-testid": "route-unverified", text: t("route_unverified_badge") }) : null);
  const card = el("div", { class: "card handover" + (h.risk ? " risk" : "") }, steps, vehicle);
  if (!h.risk) { dispositionCode = null; dispositionNote = ""; }    // the next risk starts from a clean choice
  const escortsLarge = h.step === "escort_verification" && !h.risk;
  if (h.risk && !v.pending_auth) card.append(riskPanel(v, h));
  else if (h.risk) card.append(openAlarms(h));
  if (escortsLarge) card.append(el("div", { class: "row people", "data-testid": "escorts" }, ...h.escorts.map(escortCard)));
  else if (!h.risk) card.append(el("div", { class: "thumbs", "data-testid": "escorts" }, ...h.escorts.map(thumb)));
  if (h.step === "arrival" && !v.pending_auth) {      // back at step 1 after a restart: the truck is still parked
    card.append(actionButton({ class: "touch primary", "data-testid": `manual-arrival-${h.task_id}`, text: t("manual_arrival") },
      async (rid) => (await post("/api/manual-arrival", { task_id: h.task_id }, rid)).ok));
  }
  // during a risk the boxes stay below the decision: the officer may check them, the decision comes first
  if (["box_handover", "officer_confirmation", "sign_off"].includes(h.step)) card.append(boxesPanel(h));
  if (!h.risk && h.step === "officer_confirmation" && v.password_allowed && !v.pending_auth) card.append(passwordForm(v, null));
  if (h.officer) {
    card.append(el("div", { class: "officer", "data-testid": "officer" },
      h.officer.photo ? el("img", { src: h.officer.photo, alt: h.officer.name, "data-testid": "officer-photo" }) : null,
      el("span", { text: `${t("officer")} ` }), el("span", { class: "name", text: h.officer.name }),
      el("span", { class: "empno", "data-testid": "employee-no", text: t("person.employee_no", { no: h.officer.employee_no }) }),
      el("span", { class: "badge ok", text: `${t("verified")} ${h.officer.verified_at}` }),
      h.marks.length ? el("span", { class: "muted", text: `· ${h.marks.join("、")} ✓` }) : null));
  }
  root.append(card);
}

function openAlarms(h) {
  return el("div", { class: "open-alarms" }, ...h.open_alarms.map((a) =>
    el("div", { class: "alarm", "data-testid": `open-alarm-${a.kind}` }, a.text,
      a.hq_seen ? el("div", { class: "hq-seen", "data-testid": `hq-seen-${a.kind}`, text: a.hq_seen }) : null)));
}

// Risk handling (风险处置): the officer picks a disposition that fits the alarm, writes a note, decides;
// then signs what is shown on the signing card.
let dispositionCode = null;
let dispositionNote = "";
function riskPanel(v, h) {
  if (!v.disposition_codes.includes(dispositionCode)) dispositionCode = null;
  const panel = el("div", { class: "riskpanel", "data-testid": "risk" },
    el("h2", { text: t("risk") }), openAlarms(h));
  const hint = el("div", { class: "hint", "data-testid": "disposition-hint" });
  const text = el("input", { type: "text", class: "touch wide", maxlength: "500", "data-testid": "disposition-text",
                             placeholder: t("disposition.text"), value: dispositionNote,
                             oninput: (e) => { dispositionNote = e.target.value; } });
  const decide = [];
  const codes = el("div", { class: "grid" }, ...v.disposition_codes.map((c) => el("button", {
    class: "touch choice" + (c === dispositionCode ? " chosen" : ""), "data-testid": `disposition-${c}`, text: t("disposition." + c),
    "aria-pressed": c === dispositionCode ? "true" : "false",
    onclick: (e) => { dispositionCode = c; codes.querySelectorAll(".choice").forEach((b) => { b.classList.remove("chosen"); b.setAttribute("aria-pressed", "false"); });
                      e.currentTarget.classList.add("chosen"); e.currentTarget.setAttribute("aria-pressed", "true");
                      hint.textContent = ""; decide.forEach((b) => b.classList.remove("inactive")); } })));
  const send = (resolution) => async (rid) => {
    if (!dispositionCode) { hint.textContent = t("disposition.choose_first"); return false; }
    const r = await post("/api/disposition", { code: dispositionCode, text: text.value, resolution }, rid);
    return r.ok;
  };
  const cont = actionButton({ class: "touch primary" + (dispositionCode ? "" : " inactive"), "data-testid": "disposition-continue",
                              text: t("disposition.continue") }, send("continue"));
  const abort = actionButton({ class: "touch danger" + (dispositionCode ? "" : " inactive"), "data-testid": "disposition-abort",
                               text: t("disposition.abort") }, send("abort"));
  decide.push(cont, abort);
  panel.append(codes, text, el("div", { class: "decide" }, cont, abort), hint,
    el("div", { class: "consequence", "data-testid": "abort-consequence", text: t("disposition.abort_consequence") }));
  return panel;
}

// A password for a pending action, or for the officer's confirmation where the site allows it.
function passwordForm(v, purpose) {
  const who = el("select", { class: "touch", "data-testid": "password-officer" },
    ...v.officers.map((o) => el("option", { value: o.person_id, text: o.name })));
  const pw = el("input", { type: "password", class: "touch", "data-testid": "password-input", placeholder: t("password"),
                           autocomplete: "off" });
  const msg = el("span", { class: "error", "data-testid": "password-error" });
  return el("div", { class: "pwrow", "data-testid": purpose ? "password-sign" : "password-confirm" }, who, pw,
    actionButton({ class: "touch primary", "data-testid": "password-submit", text: t("password_confirm") }, async (rid) => {
      const r = await post("/api/password", { person_id: who.value, password: pw.value }, rid);
      pw.value = "";
      msg.textContent = r.ok && r.data.ok ? "" : t("sign.password_wrong");
      return false;                // the view moves on when it is signed; a wrong password may be retried
    }), msg);
}

// What the officer signs, on the screen they sign on.
function renderPending(v) {
  const root = $("#pending");
  const p = v.pending_auth;
  if (!p) { root.replaceChildren(); delete root.dataset.key; return; }
  const key = JSON.stringify(p);
  if (root.dataset.key === key && root.firstChild) return;        // keep a password being typed
  root.dataset.key = key;
  const rows = [];
  if (p.purpose === "disposition") {
    rows.push([t("sign.code"), t("disposition." + p.code), "sign-code"],
              [t("sign.note"), p.text || t("sign.no_note"), "sign-note"],
              [t("sign.decision"), t(p.resolution === "abort" ? "disposition.abort" : "disposition.continue"), "sign-decision"]);
  } else if (p.purpose === "manual_arrival") {
    rows.push([t("sign.task"), `${p.task_id}${p.plate ? " · " + p.plate : ""}`, "sign-task"]);
  } else if (p.purpose === "enrolment") {
    rows.push([t("sign.person"), p.name, "sign-person"], [t("sign.enrol_finger"), t("finger." + p.finger), "sign-finger"]);
  }
  const abort = p.purpose === "disposition" && p.resolution === "abort";
  const card = el("div", { class: "card pending" + (abort ? " abort" : ""), "data-testid": "pending-auth", "data-purpose": p.purpose },
    el("h2", { text: `${t("sign.title")} · ${t("sign.purpose." + p.purpose)}` }),
    rows.length ? el("dl", { class: "sign" }, ...rows.map(([k, val, id]) => [el("dt", { text: k }), el("dd", { "data-testid": id, text: val })])) : null,
    abort ? el("p", { class: "consequence", "data-testid": "sign-consequence", text: t("disposition.abort_consequence") })
          : p.purpose === "disposition" ? el("p", { class: "muted", text: t("disposition.continue_consequence") }) : null,
    v.password_for_pending ? passwordForm(v, p.purpose) : null,
    el("div", { class: "signfoot" }, el("p", { class: "waiting", text: `${t("waiting_officer")}：${t("sign.finger")}` }),
      actionButton({ class: "touch", "data-testid": "pending-cancel", text: p.purpose === "disposition" ? t("sign.back") : t("cancel") },
        async (rid) => (await post("/api/cancel", {}, rid)).ok && false)));
  root.replaceChildren(card);
  $("#screen").scrollTop = 0;                 // what is signed is read from its first line
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

// A wrong or unknown truck: on every face until staff acknowledge it. The public sees that there is
// an alarm, not what it names.
function renderAlarms(v) {
  const root = $("#alarms");
  root.replaceChildren();
  if (!v.site_alarms.length) return;
  const detail = !!(v.staff || v.handover);
  root.append(el("div", { class: "alarmbar" },
    el("div", { class: "alarmtexts" }, ...(detail
      ? v.site_alarms.slice(0, 2).map((a) => el("div", { class: "alarm", "data-testid": `alarm-${a.kind}` }, `${a.at.slice(0, 5)} ${a.text}`,
          a.hq_seen ? el("div", { class: "hq-seen", "data-testid": `hq-seen-${a.kind}`, text: a.hq_seen }) : null))
      : [el("div", { class: "alarm", "data-testid": "alarm-attention", text: t("alarm.attention") })])),
    v.handover && !v.staff ? null : actionButton({ class: "touch", "data-testid": "alarm-ack", text: t("alarm.ack") },
      async (rid) => (await post("/api/alarms/ack", {}, rid)).ok && false)));
}

// The idle screen, for anyone passing: no schedule, no plates, no names.
function renderPublic(v) {
  const root = $("#public");
  root.replaceChildren();
  if (v.handover || v.report || v.pending_auth) return;
  const kiosk = actionButton({ class: "touch big", "data-testid": "kiosk-enter", text: v.staff ? t("kiosk.enter") : t("kiosk_customer") },
    async (rid) => (await post("/api/kiosk/enter", {}, rid)).ok && false);
  const due = v.complaints_due;     // the background check's complaint reminders: staff only
  const notice = v.schedule_notice ? el("span", { class: "badge", "data-testid": "schedule-notice", text: v.schedule_notice }) : null;
  if (v.staff) { root.append(el("div", { class: "staffbar" }, el("span", { text: `${t("staff_by")}: ${v.staff}` }), notice,
    due && (due.near || due.overdue) ? el("span", { class: "badge warn", "data-testid": "due-summary", text: t("kiosk.due_summary", due) }) : null,
    kiosk)); return; }
  root.append(el("div", { class: "welcome" }, el("div", { class: "hello", text: t("public_welcome") }),
    el("div", { class: "site", text: v.site.name }), notice, el("p", { text: t("public_hint") }), kiosk));
}

// The day's schedule as a window (the next due and the last finished) under the day's counts: a vault's
// thousands of tasks are counted, not listed.
function renderTasks(v) {
  const root = $("#tasks");
  root.replaceChildren();
  if (!v.staff || v.handover) return;         // the schedule: staff only, and out of the way during a handover
  const s = v.task_summary;
  const table = el("table", { class: "tasks" }, el("tr", {},
    ...["task", "kind", "window", "vehicle", "escorts", "boxes", "status"].map((k) => el("th", { text: t(k) })),
    el("th", {})));
  const manual = (x) => (!v.handover && !v.pending_auth && x.status === "planned")
    ? actionButton({ class: "touch", "data-testid": `manual-arrival-${x.task_id}`, text: t("manual_arrival") },
                   async (rid) => (await post("/api/manual-arrival", { task_id: x.task_id }, rid)).ok && false) : null;
  for (const x of v.tasks) table.append(el("tr", { "data-testid": `task-${x.task_id}` },
    el("td", { text: x.task_id }), el("td", { text: t("kind." + x.kind) }),
    el("td", { class: x.late && x.status === "planned" ? "late" : null, text: `${x.window_start}–${x.window_end}` }),
    el("td", { text: x.plate }),
    el("td", { class: "escorts", text: x.escorts.join("、") }), el("td", { text: String(x.boxes) }),
    el("td", { class: "status-" + x.status, "data-testid": "task-status", text: t("status." + x.status) }),
    el("td", {}, manual(x))));
  root.append(el("div", { class: "card" },
    el("div", { class: "taskhead" }, el("h2", { text: t("today_tasks") }),
       s.total ? el("span", { class: "muted", "data-testid": "task-summary", text: t("tasks_summary", s) + (s.overdue ? t("tasks_overdue", s) : "") }) : null),
    v.tasks.length ? el("div", { class: "tablewrap" }, table) : el("p", { text: t(s.total ? "tasks_none_due" : "no_tasks") }),
    s.total > s.shown ? el("p", { class: "muted tasknote", "data-testid": "task-window", text: t("tasks_window", s) }) : null));
}

// --- the simulator: a demo tool in a drawer of its own colour, never part of the product's screen ---
// Its document (the day's trucks, fingers and tags) comes on its own stream, only when it changes.
let simOpen = localStorage.getItem("sim-open") === null ? window.innerWidth >= 1500 : localStorage.getItem("sim-open") === "1";
let simDoc = null, simStream = null;
function connectSim() {
  simStream = new EventSource("/api/sim/events");
  simStream.onmessage = (m) => { simDoc = JSON.parse(m.data); if (last) renderSim(last); };
  simStream.onerror = () => { simStream.close(); setTimeout(connectSim, 1000); };
}
function renderSim(v) {
  const root = $("#sim"), toggle = $("#sim-toggle");
  if (v.simulate && !simStream) connectSim();
  toggle.hidden = !v.simulate;
  if (!v.simulate) { root.hidden = true; return; }
  toggle.textContent = simOpen ? `✕ ${t("sim.close")}` : `⚙ ${t("sim.open")}`;
  toggle.classList.toggle("open", simOpen);
  document.body.classList.toggle("sim-open", simOpen);
  root.hidden = !simOpen;
  if (!simDoc) return;                         // its document is on its way
  // rebuilt only when its document, the language or an enrolment's capture changed, not on every view
  const key = [simOpen, simDoc.version, lang, JSON.stringify(v.enrolment && [v.enrolment.current, v.enrolment.station])].join("|");
  if (root.dataset.key === key) return;
  root.dataset.key = key;
  root.replaceChildren();
  if (!simOpen) return;                        // closed: nothing of the demo's people or trucks in the page
  const s = simDoc;
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
  const clock = el("div", { class: "grid" }, ...s.tasks.map((x) => btn(`${x.task_id} ${x.window_start}`, `sim-clock-${x.task_id}`,
      () => post("/api/sim/clock", { offset_minutes: Math.round((Date.parse(x.window_start_iso) - Date.now()) / 60000) + 5 }))),
    btn(t("sim.clock_now"), "sim-clock-now", () => post("/api/sim/clock", { offset_minutes: 0 })));
  root.append(el("div", { class: "simhead" }, el("h2", { text: t("sim.title") }), el("span", { class: "demo", text: t("sim.demo") })),
    el("h3", { text: t("sim.clock") }), clock,
    el("h3", { text: t("sim.truck") }), trucks,
    el("h3", { text: t("sim.door_finger") }), fingers("door"),
    el("h3", { text: t("sim.counter_finger") }), fingers("counter"),
    el("h3", { text: t("sim.tag") }), tags);
  const enrol = enrolSim(v, s);
  if (enrol) root.append(enrol);
}
$("#sim-toggle").addEventListener("click", () => {
  simOpen = !simOpen;
  localStorage.setItem("sim-open", simOpen ? "1" : "0");
  if (last) renderSim(last);
});

function renderHeader(v) {
  $("#site").textContent = v.site.name;
  const door = $("#door");
  const paused = v.door && v.handover && v.handover.risk;
  door.className = v.door ? (paused ? "open paused" : "open") : "";
  door.textContent = `${t("door")}: ${v.door ? t("door_open") : t("door_closed")}${paused ? " · " + t("door_paused") : ""}`;
  door.dataset.raised = v.door ? "true" : "false";
  $("#lang").textContent = t("language");
  const staff = $("#staff");
  staff.hidden = !!v.handover && !v.staff;     // during a handover the officer's finger belongs to it
  staff.textContent = v.staff ? t("staff_logout") : t("staff_login");
  staff.classList.toggle("on", !!v.staff);
  syncClock(v.now);
  $("#health").replaceChildren(el("span", { text: t("devices") + ":" }), ...v.health.map((h) =>
    el("span", { class: h.state, title: h.error || "", "data-testid": `health-${h.device}`, text: h.text || `${t("device." + h.device)} ${t("health." + h.state)}` })));
}
$("#staff").addEventListener("click", () => post(last && last.staff ? "/api/staff/logout" : "/api/staff/open", {}));

// A truck took the screen from the complaint kiosk: the customer still standing there sees a curtain,
// not the escorts, until staff take over.
let curtainLifted = null;
function curtain(v) {
  const id = v.handover && v.from_kiosk ? v.handover.task_id : null;
  let c = $("#curtain");
  if (!id || curtainLifted === id) { if (c) c.remove(); return false; }
  if (!c) {
    c = el("div", { id: "curtain", class: "curtain", "data-testid": "curtain" },
      el("div", { class: "dialog" }, el("h2", { text: t("curtain.title") }), el("p", { text: t("curtain.text") }),
        el("button", { class: "touch primary big", "data-testid": "curtain-staff", text: t("curtain.staff"),
                       onclick: () => { curtainLifted = id; if (last) render(last); } })));
    document.body.append(c);
  }
  return true;
}

// disposition notes and officer passwords are typed on the screen itself: it has no keyboard
const keyboard = createKeyboard({ label: t });

// leave for the kiosk once: every push while the page unloads would start the navigation again and abort the first
let leavingForKiosk = false;

async function render(v) {
  if (v.mode === "kiosk") { if (!leavingForKiosk) { leavingForKiosk = true; location.replace("/kiosk"); } return; }
  if (await loadLabels(v.lang, "title")) keyboard.relabel();
  last = v;
  renderHeader(v); renderSim(v);
  if (curtain(v)) {
    for (const id of ["#handover", "#pending", "#report", "#public", "#tasks", "#alarms"]) $(id).replaceChildren();
    $("#instruction").textContent = t("curtain.title");
    $("#feedback").replaceChildren();
  } else {
    renderPrompt(v); renderAlarms(v); renderPending(v); renderHandover(v); renderReport(v); renderPublic(v); renderTasks(v);
    renderEnrolment(v); renderRecords(v);
  }
  document.body.dataset.version = v.version;
}

$("#lang").addEventListener("click", () => post("/api/language", { lang: lang === "zh-CN" ? "en" : "zh-CN" }));
startClock($("#clock"));
// a staff session lapses on the agent; the page asks again when it should have, so the schedule goes away
setInterval(() => {
  if (last && last.staff_until && Date.now() + clockSkew > new Date(last.staff_until.slice(0, 19)).getTime() + 1000)
    api("/api/view").then((r) => { if (r.ok) render(r.data); });
}, 5000);

function connect() {
  const es = new EventSource("/api/events");
  es.onmessage = (m) => {
    const v = JSON.parse(m.data);
    if (last && v.version === last.version && v.lang === last.lang && v.staff === last.staff) return;
    const typing = document.activeElement && ["INPUT", "SELECT"].includes(document.activeElement.tagName);
    if (typing && last && last.handover && v.handover && last.handover.step === v.handover.step && last.handover.risk === v.handover.risk
        && !!last.pending_auth === !!v.pending_auth) { pendingView = v; return; }
    render(v);
  };
  es.onerror = () => { es.close(); setTimeout(connect, 1000); };
}
connect();
