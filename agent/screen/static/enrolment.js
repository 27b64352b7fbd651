// Enrolment at the branch (SPEC §2.4): one step per screen — pick the person, pick the finger, the officer
// signs, the captures ("press", "press again"), the result. Self-contained: app.js calls renderEnrolment(v),
// and enrolSim(v, sim) for the simulator panel's part.
"use strict";
let enrolPick = null;        // {open, person_id, name} while staff choose; the agent's view takes over after

function enrolPrompt(stage) {
  return { press: "enrol.press", press_again: "enrol.press_again", done: "enrol.done", duplicate: "enrol.duplicate",
           failed: "enrol.failed", cancelled: "enrol.cancelled" }[stage];
}

function enrolStep(v) {
  const e = v.enrolment;
  if (e.current) return "capture";
  if (v.pending_auth && v.pending_auth.purpose === "enrolment") return "officer";
  if (!enrolPick || v.handover) return null;
  return enrolPick.person_id ? "finger" : "person";
}

function enrolCard(v, step) {
  const e = v.enrolment;
  const card = el("div", { class: "card enrol", "data-testid": "enrol", "data-step": step },
    el("h2", { text: t("enrol.title") }));
  const close = (label = "cancel") => el("button", { class: "touch", "data-testid": "enrol-close", text: t(label),
    onclick: () => { enrolPick = null; if (e.current) post("/api/enrolment/close", {}); else render(last); } });
  if (step === "person") {
    card.append(el("h3", { text: t("enrol.pick_person") }), el("div", { class: "grid enrol-people" },
      ...e.people.map((p) => el("button", { class: "touch", "data-testid": `enrol-person-${p.person_id}`,
        text: `${p.name} · ${t("role." + p.role)}`,
        onclick: () => { enrolPick = { person_id: p.person_id, name: p.name }; render(last); } }))), close());
  } else if (step === "finger") {
    card.append(el("h3", { text: t("enrol.pick_finger", { name: enrolPick.name }) }), el("div", { class: "grid" },
      ...e.fingers.map((f) => el("button", { class: "touch", "data-testid": `enrol-finger-${f}`, text: t("finger." + f),
        onclick: () => post("/api/enrolment", { person_id: enrolPick.person_id, finger: f }) }))), close());
  } else if (step === "officer") {
    const p = v.pending_auth;
    const who = e.people.find((x) => x.person_id === p.person_id);
    card.append(el("p", { class: "enrol-big", "data-testid": "enrol-instruction",
                          text: t("enrol.officer", { name: who ? who.name : p.person_id, finger: t("finger." + p.finger) }) }));
  } else {
    const c = e.current;
    card.append(el("div", { class: "muted", text: `${c.name} · ${t("finger." + c.finger)}` }),
      el("div", { class: "steps" }, ...["press", "press_again", "done"].map((s, i) => el("div", {
        class: "step" + (s === c.stage ? " current" : "") + (["press", "press_again", "done"].indexOf(c.stage) > i ? " done" : ""),
        text: `${i + 1}. ${t("enrol.stage." + s)}` }))),
      el("p", { class: "enrol-big enrol-" + c.stage, "data-testid": "enrol-instruction", "data-stage": c.stage,
                text: t(enrolPrompt(c.stage), { name: c.name }) }),
      close(c.running ? "cancel" : "enrol.finish"));
  }
  return card;
}

function enrolSim(v, sim) {
  // the simulator panel plays the person's new finger at the counter, then the enrolled fingers at the door
  const e = v.enrolment;
  const card = el("div", { class: "card", "data-testid": "sim-enrol" }, el("h3", { text: t("sim.enrol") }));
  if (e.current && e.current.running) {
    const station = e.station;
    card.append(el("button", { class: "touch", "data-testid": "sim-enrol-new-finger", text: t("sim.enrol_new"),
      onclick: () => post("/api/sim/finger", { station, new_finger: `${e.current.person_id}/${e.current.finger}` }) }));
  }
  for (const p of sim.people) for (const [finger, slot] of Object.entries(p.fingers || {})) {
    if (slot === p.slot) continue;          // the panel's own button plays the first finger
    card.append(el("button", { class: "touch", "data-testid": `sim-door-${p.person_id}-${finger}`,
      text: `${p.name} · ${t("finger." + finger)}`, onclick: () => post("/api/sim/finger", { station: "door", slot }) }));
  }
  return card.childElementCount > 1 ? card : null;
}

function renderEnrolment(v) {
  let root = $("#enrolment");
  if (!root) { root = el("section", { id: "enrolment" }); $("#pending").after(root); }
  root.replaceChildren();
  if (!v.enrolment) return;
  const step = enrolStep(v);
  document.body.classList.toggle("enrolling", !!step);
  if (step) root.append(enrolCard(v, step));
  else if (v.staff && !v.handover && !v.pending_auth) {      // a staff action: staff signed in first
    root.append(el("button", { class: "touch", "data-testid": "enrol-open", text: t("enrol.open"),
                               onclick: () => { enrolPick = { open: true }; render(last); } }));
  }
}
