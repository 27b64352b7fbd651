// The complaint officers' page: complaints with their working-day deadlines and overdue flags, one opened
// (details decrypted at head office, the timeline), a step sent to the terminal that holds it, and the
// half-year report. Every text is set with textContent: complaint details are customers' own words.
"use strict";

let current = null;          // the ref opened
let waiting = null;          // {ref, steps, msg_id}: a step sent, its journal entry not back yet
const word = (prefix, v) => (v === null || v === undefined || v === "") ? "" : (me.text[`${prefix}${v}`] || v);

const when = (iso) => iso ? iso.replace("T", " ").slice(0, 16) : "";

async function loadList() {
  const rows = await api("/api/complaints");
  document.getElementById("empty").hidden = rows.length > 0;
  document.getElementById("rows").replaceChildren(...rows.map((c) => {
    const late = c.overdue || c.due.some((d) => d.state === "overdue");
    const flags = [late ? el("span", { class: "flag overdue", "data-testid": "complaint-overdue", text: T("complaints_overdue") }) : null,
      ...c.due.filter((d) => d.state !== "overdue").map((d) => el("span", { class: "flag near", text: T("complaints_near_due", { limit: word("complaints_limit_", d.limit) }) })),
      c.escalations.length ? el("span", { class: "flag urgent", text: T("complaints_urgent") }) : null];
    return el("tr", { class: `complaint${late ? " overdue" : ""}${c.ref === current ? " open" : ""}`,
                      "data-testid": "complaint-row", "data-ref": c.ref, "data-status": c.status,
                      "data-overdue": late ? "true" : "false", tabindex: 0,
                      onclick: () => openOne(c.ref), onkeydown: (e) => { if (e.key === "Enter") openOne(c.ref); } },
      el("td", { class: "ref", text: c.ref }), el("td", { text: me.sites[c.site_id] || c.site_id }),
      el("td", { text: when(c.received_at) }), el("td", { text: word("complaints_category_", c.category) }),
      el("td", { text: word("complaints_status_", c.status) }),
      el("td", {}, el("span", { text: c.deadlines.reply_by }), ...flags));
  }));
}

function field(label, value, testid) {
  if (value === null || value === undefined || value === "") return null;
  return el("div", { class: "field" }, el("dt", { text: label }), el("dd", { "data-testid": testid, text: String(value) }));
}

// the action's fields: [param, label key, kind] (kind: text, area, choice list)
const FORMS = {
  classify: [["complexity", "complaints_p_complexity", ["general", "complex"]], ["validity", "complaints_p_validity", ["valid", "special"]]],
  transfer: [["to", "complaints_p_to", "note"], ["handler", "complaints_p_handler", "text"]],
  investigate: [],
  handle: [["notes", "complaints_p_notes", "note"], ["cause", "complaints_p_cause", "area"], ["remedy", "complaints_p_remedy", "area"],
           ["responsibility", "complaints_p_responsibility", ["", "at_fault", "not_at_fault", "shared"]]],
  reply: [["reply", "complaints_p_reply", "note"]],
  satisfaction: [["satisfied", "complaints_p_satisfied", ["true", "false"]]],
  not_accept: [["reason", "complaints_p_reason", "note"], ["approver", "complaints_p_approver", "text"]],
  withdraw: [["reason", "complaints_p_reason", "note"], ["voluntary", "complaints_p_voluntary", ["true", "false"]]],
  archive: [],
};

// the step that usually comes next in each state (the terminal's lifecycle table decides what is allowed)
const NEXT = { registered: "classify", classified: "transfer", transferred: "investigate", investigating: "handle",
               handled: "reply", replied: "satisfaction", satisfied: "archive", not_accepted: "archive",
               withdrawn: "archive", repeat: "archive" };

function actionForm(c) {
  const select = el("select", { "data-testid": "complaint-action", id: "action" },
    ...Object.keys(FORMS).map((a) => el("option", { value: a, text: word("complaints_action_", a) })));
  select.value = NEXT[c.status] || "classify";
  const fields = el("div", { class: "act-fields" });
  const note = el("textarea", { "data-testid": "complaint-note", id: "note", rows: 3, maxlength: 2000 });
  const noteLabel = el("label", { class: "note-label" }, el("span", { id: "note-label" }), note);
  const drawn = () => {
    const spec = FORMS[select.value];
    const main = spec.find(([, , kind]) => kind === "note");
    // a step without a text of its own still takes a note: head office keeps it (sealed with what was sent)
    noteLabel.querySelector("#note-label").textContent = T(main ? main[1] : "complaints_p_hq_note");
    fields.replaceChildren(...spec.filter(([, , kind]) => kind !== "note").map(([name, label, kind]) => {
      const input = Array.isArray(kind)
        ? el("select", { name }, ...kind.map((v) => el("option", { value: v, text: v === "" ? "—" : word("complaints_v_", v) })))
        : kind === "area" ? el("textarea", { name, rows: 2, maxlength: 2000 }) : el("input", { name, maxlength: 100 });
      return el("label", {}, el("span", { text: T(label) }), input);
    }));
  };
  select.addEventListener("change", drawn);
  const message = el("p", { class: "act-message", "data-testid": "complaint-act-message", "aria-live": "polite" });
  const form = el("form", { class: "act-form", onsubmit: async (e) => {
    e.preventDefault();
    const action = select.value;
    const params = {};
    const main = FORMS[action].find(([, , kind]) => kind === "note");
    if (main) params[main[0]] = note.value;
    else if (note.value.trim()) params.notes = note.value;
    for (const input of fields.querySelectorAll("[name]")) {
      if (input.value === "") continue;
      params[input.name] = (input.value === "true" || input.value === "false") ? input.value === "true" : input.value;
    }
    try {
      const sent = await api(`/api/complaints/${encodeURIComponent(c.ref)}/act`, { action, params });
      waiting = { ref: c.ref, steps: c.steps.length, msg_id: sent.msg_id };
      message.className = "act-message";
      message.textContent = T("complaints_sent", { action: word("complaints_action_", action) });
      note.value = "";
    } catch (err) {
      message.className = "act-message bad";
      message.textContent = String(err.message);
    }
  } }, el("label", {}, el("span", { text: T("complaints_action") }), select), fields, noteLabel,
     el("button", { type: "submit", "data-testid": "complaint-submit", text: T("complaints_submit") }), message);
  drawn();
  return form;
}

function timeline(c) {
  const notes = {};        // head office's notes on steps that carry no text of their own, in order
  for (const s of c.sent) if (s.answer === "ok" && s.params?.notes) (notes[s.action] ||= []).push(s.params.notes);
  const items = c.steps.map((s) => el("li", { "data-testid": "complaint-step", "data-action": s.action },
    el("span", { class: "at", text: when(s.at) }),
    el("b", { text: ` ${word("complaints_action_", s.action)} ` }),
    el("span", { text: `${word("complaints_status_", s.before)} → ${word("complaints_status_", s.after)} · ${s.source === "head_office" ? T("complaints_by_hq") : s.actor}` }),
    ...Object.entries(s.texts || {}).map(([k, v]) => el("div", { class: "text", text: T("complaints_text_line", { label: T("complaints_p_" + k), text: v }) })),
    !s.texts && s.source === "head_office" && notes[s.action]?.length
      ? el("div", { class: "text", text: T("complaints_text_line", { label: T("complaints_p_hq_note"), text: notes[s.action].shift() }) })
      : null));
  const pending = c.sent.filter((s) => s.answer !== "ok").map((s) => el("li", { class: s.answer ? "refused" : "pending",
    "data-testid": "complaint-sent", text: `${when(s.at)} ${word("complaints_action_", s.action)} · ${s.officer} · ` +
      (s.answer ? T("complaints_refused", { why: s.answer }) : T("complaints_waiting")) }));
  return el("ol", { class: "timeline" }, el("li", {}, el("span", { class: "at", text: when(c.received_at) }),
    el("b", { text: ` ${T("complaints_registered")}` })), ...items, ...pending);
}

function drawDetail(c) {
  const d = c.details || {};
  const box = document.getElementById("detail");
  box.hidden = false;
  const lateText = c.overdue ? T("complaints_overdue") : "";
  box.replaceChildren(
    el("h2", {}, el("span", { text: `${T("complaints_detail")} ${c.ref} ` }),
      el("span", { class: `status s-${c.status}`, "data-testid": "complaint-status", "data-status": c.status,
                   text: word("complaints_status_", c.status) }),
      lateText ? el("span", { class: "flag overdue", text: lateText }) : null),
    el("div", { class: "detail-grid" },
      el("dl", {},
        field(T("complaints_col_site"), me.sites[c.site_id] ? `${me.sites[c.site_id]} (${c.site_id})` : c.site_id, "complaint-site"),
        field(T("complaints_col_received"), when(c.received_at), "complaint-received"),
        field(T("complaints_channel"), word("complaints_channel_", c.channel), "complaint-channel"),
        field(T("complaints_col_category"), word("complaints_category_", c.category), "complaint-category"),
        field(T("complaints_name"), c.anonymous ? T("complaints_anonymous") : d.name, "complaint-name"),
        field(T("complaints_contact"), d.contact, "complaint-contact"),
        field(T("complaints_description"), d.description, "complaint-description"),
        field(T("complaints_request"), d.request, "complaint-request"),
        field(T("complaints_counter"), d.counter, "complaint-counter"),
        field(T("complaints_deadlines"), ["acknowledge_by", "reply_by", "outer_limit"].filter((k) => c.deadlines[k])
          .map((k) => `${word("complaints_deadline_", k)} ${c.deadlines[k]}`).join("；"), "complaint-deadlines")),
      el("div", {}, el("h3", { text: T("complaints_timeline") }), timeline(c))),
    ...(c.status === "archived" ? [] : [el("h3", { text: T("complaints_act") }), actionForm(c)]));
}

async function openOne(ref) {
  current = ref;
  const c = await api(`/api/complaints/${encodeURIComponent(ref)}`);
  drawDetail(c);
  loadList();
}

// after a step is sent: poll until the terminal's journal entry (or its refusal) is back at head office
async function poll() {
  if (waiting && waiting.ref === current) {
    const p = await api(`/api/complaints/${encodeURIComponent(current)}?progress=1`);
    const answered = p.answers[waiting.msg_id];
    if (p.steps > waiting.steps || (answered && answered !== "ok")) {
      waiting = null;
      await openOne(current);          // opened again in full (audited) only now that it changed
    }
  }
}

async function showReport(e) {
  e.preventDefault();
  if (!me) return;                   // still loading: the next press goes through
  const year = document.getElementById("year").value, half = document.getElementById("half").value;
  const q = `year=${encodeURIComponent(year)}&half=${encodeURIComponent(half)}`;
  const box = document.getElementById("report");
  box.hidden = false;
  let r;
  try { r = await api(`/api/complaints/report?${q}`); } catch (err) {
    box.replaceChildren(el("p", { class: "bad", text: String(err.message) }));
    return;
  }
  const link = document.getElementById("download");
  link.href = `/api/complaints/report?${q}&download=1`;
  link.hidden = false;
  box.replaceChildren(
    el("p", { text: T("complaints_report_period", { start: r.period.start, end: r.period.end, due: r.due }) }),
    el("p", { class: "totals", "data-testid": "complaints-report-totals",
              text: T("complaints_report_totals", { received: r.received, resolved: r.resolved, overdue: r.overdue }) }),
    el("table", {}, el("thead", {}, el("tr", {}, ...["complaints_col_category", "complaints_report_received",
      "complaints_report_resolved", "complaints_report_overdue"].map((k) => el("th", { text: T(k) })))),
      el("tbody", {}, ...Object.entries(r.by_category).map(([cat, n]) => el("tr", { "data-testid": "complaints-report-category", "data-category": cat },
        el("td", { text: word("complaints_category_", cat) }), el("td", { text: n.received }), el("td", { text: n.resolved }),
        el("td", { text: n.overdue }))))),
    el("h3", { text: T("complaints_report_main") }),
    el("ol", {}, ...r.main_issues.map((m) => el("li", { text: `${word("complaints_category_", m.category)} (${m.count})` }))),
    el("h3", { text: T("complaints_report_causes") }),
    el("table", {}, el("thead", {}, el("tr", {}, ...["complaints_col_ref", "complaints_col_category", "complaints_p_cause",
      "complaints_p_remedy"].map((k) => el("th", { text: T(k) })))),
      el("tbody", {}, ...r.causes_and_remedies.map((c) => el("tr", { "data-testid": "complaints-report-cause", "data-ref": c.ref },
        el("td", { text: c.ref }), el("td", { text: word("complaints_category_", c.category) }),
        el("td", { text: c.cause }), el("td", { text: c.remedy }))))));
}

async function start() {
  me = await api("/api/complaints/me");
  header();
  document.getElementById("no-key").hidden = me.key;
  // the report due next: December to May is reported on 15 June, June to November on 15 December
  const [year, month] = me.today.split("-").map(Number);      // the bank's day, not this browser's
  document.getElementById("year").value = year + (month === 12 ? 1 : 0);
  document.getElementById("half").value = (month === 12 || month < 6) ? "1" : "2";
  await loadList();
  document.body.dataset.ready = "true";
  setInterval(() => { loadList().catch(() => {}); poll().catch(() => {}); }, 2000);
}

// at once, not after /api/complaints/me: a press before it answers must not fall through to a native GET
document.getElementById("report-form").addEventListener("submit", showReport);
start();
