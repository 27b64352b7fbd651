// The complaint kiosk (SPEC §6). Everything a customer or staff typed goes back on screen through
// textContent only, so no input can become markup. The form is saved as a sealed draft on the agent
// while typing, so a truck's arrival (which takes the screen) loses nothing.
"use strict";
const params = new URLSearchParams(location.search);
// Seconds without a touch before the form clears: screen.idle_timeout_seconds, carried by the view
// (head office may change it); ?idle= and ?warn= override them for tests.
let IDLE = Number(params.get("idle") || 120) * 1000;
let WARN = Number(params.get("warn") || 15) * 1000;           // the warning shows this long before
function idleFrom(v) {
  const s = v.settings && v.settings["screen.idle_timeout_seconds"];
  if (!params.get("idle") && s) { IDLE = s * 1000; if (!params.get("warn")) WARN = Math.min(15000, IDLE / 2); }
}
const TEXT_FIELDS = ["description", "request", "name", "contact", "counter"];
const LONG = new Set(["description", "request"]);

let options = null, last = null;
let form = emptyForm();
let lastActivity = Date.now(), saveTimer = null, leaving = false, staffShown = false;
let shownDue = null;                 // the complaint reminders the staff view was drawn with
let submitRid = requestId();         // one id per version of the form: a double tap on submit registers once
const keyboard = createKeyboard({ label: t });   // the wall screen has no physical keyboard

function emptyForm() {
  return { channel: "walk_in", category: "", description: "", request: "", name: "", contact: "", counter: "",
           staff_concerned: [], first_responder: "", consent: "" };
}
let fillFor = false;                 // staff register on a customer's behalf (首问负责制)
const filledForCustomer = () => fillFor && !!(last && last.staff);
const touched = () => TEXT_FIELDS.some((k) => form[k]) || form.category || form.staff_concerned.length
                      || form.first_responder || !$("#receipt-view").hidden || !$("#lookup-view").hidden;

// --- the form ---
function choices(name, values, prefix) {
  return el("div", { class: "choices", role: "radiogroup", "data-testid": `${name}-choices` }, ...values.map((v) =>
    el("button", { type: "button", class: "touch choice" + (form[name] === v ? " chosen" : ""), role: "radio",
                   "aria-checked": form[name] === v ? "true" : "false", "data-testid": `${name}-${v}`,
                   text: t(`${prefix}.${v}`), onclick: () => { form[name] = v; changed(); renderForm(); } })));
}

// A short wizard: what about, what happened and what you ask, who you are (optional). Errors are kept per
// field so a page shows its own, and submit goes back to the first page with one.
const PAGES = [["category"], ["description", "request"], ["name", "contact", "counter", "consent"]];
let page = 0;
let errors = {};
const errorNode = (name) => el("div", { class: "error", "data-testid": `error-${name}`, text: errors[name] || "" });

function textField(name) {
  const limit = options.limits[name];
  const attrs = { id: `f-${name}`, class: "touch", "data-testid": `field-${name}`, value: form[name],
                  oninput: (e) => { form[name] = e.target.value; count(); changed(); } };
  const input = LONG.has(name) ? el("textarea", { rows: "3", ...attrs }) : el("input", { type: "text", autocomplete: "off", ...attrs });
  const counter = el("span", { class: "count" });
  const count = () => { counter.textContent = `${form[name].length}/${limit}`; counter.classList.toggle("over", form[name].length > limit); };
  count();
  const required = ["description", "request"].includes(name);
  return el("div", { class: "field" }, el("label", { for: `f-${name}` }, el("span", { text: t(`kiosk.${name}`) }),
              required ? el("span", { class: "req", text: ` *${t("kiosk.required")}` }) : null, counter), input,
            errorNode(name));
}

function staffChips() {
  return el("div", { class: "choices", "data-testid": "staff-choices" }, ...options.staff.map((p) => {
    const on = form.staff_concerned.includes(p.person_id);
    return el("button", { type: "button", class: "touch choice" + (on ? " chosen" : ""), "aria-pressed": on ? "true" : "false",
      "data-testid": `staff-${p.person_id}`, text: p.name, onclick: () => {
        form.staff_concerned = on ? form.staff_concerned.filter((x) => x !== p.person_id) : [...form.staff_concerned, p.person_id];
        changed(); renderForm(); } });
  }));
}

function renderForm() {
  const root = $("#form");
  const focused = document.activeElement && document.activeElement.id;
  const staffOnly = filledForCustomer();      // channel and first responder are staff's to fill, not a customer's
  const pages = [
    () => [staffOnly ? el("h2", { text: t("kiosk.channel") }) : null, staffOnly ? choices("channel", options.channels, "kiosk.channel") : null,
           el("h2", { text: t("kiosk.category") }, el("span", { class: "req", text: ` *${t("kiosk.required")}` })),
           choices("category", options.categories, "kiosk.category"), errorNode("category")],
    () => ["description", "request"].map(textField),
    () => [el("div", { class: "row" }, ...["name", "contact", "counter"].map(textField)),
           el("div", { class: "pick" }, el("h2", { text: t("kiosk.staff_concerned") }), staffChips()),
           staffOnly ? el("div", { class: "field" }, el("label", { for: "f-first_responder", text: t("kiosk.first_responder") }),
             el("select", { id: "f-first_responder", class: "touch", "data-testid": "field-first_responder",
                            onchange: (e) => { form.first_responder = e.target.value; changed(); } },
               el("option", { value: "", text: t("kiosk.none") }),
               ...options.staff.map((p) => el("option", { value: p.person_id, text: p.name, selected: form.first_responder === p.person_id })))) : null,
           privacyNotice()]];
  root.dataset.page = String(page + 1);
  root.replaceChildren(...[
    el("div", { class: "wizard-steps", "data-testid": "wizard-steps" }, ...[0, 1, 2].map((i) =>
      el("span", { class: "wstep" + (i === page ? " current" : i < page ? " done" : ""), "data-testid": `wizard-step-${i + 1}`,
                   text: `${i + 1} ${t("kiosk.page." + (i + 1))}` }))),
    ...pages[page]()].filter(Boolean));
  $(".intro").hidden = page !== 0;            // said once, on the first page
  $("#contacts").hidden = page !== 0;         // with where to call or appeal (and on the receipt)
  $("#prev").hidden = page === 0;
  $("#next").hidden = page === PAGES.length - 1;
  $("#submit").hidden = page !== PAGES.length - 1;
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
}

// PIPL: what the name and contact are for, who sees them, how long they are kept; consent when they are given.
function privacyNotice() {
  const on = form.consent === "yes";
  return el("div", { class: "privacy", "data-testid": "privacy-notice" },
    el("p", { text: t("kiosk.privacy") }),
    el("button", { type: "button", class: "touch choice" + (on ? " chosen" : ""), role: "checkbox", "aria-checked": on ? "true" : "false",
                   "data-testid": "privacy-consent", text: (on ? "☑ " : "☐ ") + t("kiosk.consent"),
                   onclick: () => { form.consent = on ? "" : "yes"; changed(); renderForm(); } }),
    errorNode("consent"));
}

function changed() {
  submitRid = requestId();
  lastActivity = Date.now();
  clearTimeout(saveTimer);
  saveTimer = setTimeout(saveDraft, 300);
}

async function saveDraft() {
  clearTimeout(saveTimer);
  await api("/api/kiosk/draft", { draft: touched() && $("#receipt-view").hidden ? { ...form, wizard_page: String(page) } : null });
}

// Every field's complaint, by name; true when there is none.
function validate() {
  errors = {};
  const fail = (name, text) => { errors[name] = text; };
  if (!form.category) fail("category", t("kiosk.choose", { label: t("kiosk.category") }));
  if ((form.name.trim() || form.contact.trim()) && form.consent !== "yes") fail("consent", t("kiosk.consent_needed"));
  for (const k of TEXT_FIELDS) {
    const label = t(`kiosk.${k}`), n = form[k].length, max = options.limits[k];
    if (n > max) fail(k, t("kiosk.too_long", { label, n, max }));
    else if (["description", "request"].includes(k) && !form[k].trim()) fail(k, t("kiosk.missing", { label }));
  }
  return Object.keys(errors).length === 0;
}

// Shows the page of the first field with a complaint and brings that complaint into sight.
function showErrors() {
  const first = PAGES.findIndex((fields) => fields.some((f) => errors[f]));
  if (first >= 0) page = first;
  renderForm();
  const n = [...document.querySelectorAll("#form .error")].find((x) => x.textContent);
  if (n) n.scrollIntoView({ block: "center" });
}

function turn(step) {
  lastActivity = Date.now();
  if (step > 0) {                              // forward only past a page without complaints
    validate();
    const here = PAGES[page].filter((f) => errors[f]);
    errors = Object.fromEntries(here.map((f) => [f, errors[f]]));
    if (here.length) { showErrors(); return; }
  } else errors = {};
  page = Math.max(0, Math.min(PAGES.length - 1, page + step));
  renderForm();
  changed();
  window.scrollTo(0, 0);
}

async function submit() {
  lastActivity = Date.now();
  $("#form-error").textContent = "";
  const button = $("#submit");
  if (button.disabled) return;
  if (!validate()) { showErrors(); return; }   // the first complaint about the form is brought into sight
  button.disabled = true;
  const { consent, ...fields } = form;
  let r;
  try {
    r = await api(`/api/kiosk/complaints?lang=${lang}`, { ...fields, first_responder: form.first_responder || null }, submitRid);
  } finally { button.disabled = false; }
  if (!r.ok) { $("#form-error").textContent = t("kiosk.error", { error: r.data.error || r.status }); $("#form-error").scrollIntoView({ block: "center" }); return; }
  submitRid = requestId();
  form = emptyForm();
  page = 0;
  errors = {};
  renderForm();
  showReceipt(r.data);
}

function showReceipt(rc) {
  const view = $("#receipt-view");
  view.replaceChildren(el("div", { class: "card receipt-card" },
    el("h2", { text: t("kiosk.receipt") }),
    el("div", { class: "receipt", "data-testid": "receipt-text", text: [rc.title, ...rc.lines].join("\n") }),
    el("p", { class: rc.printed ? "ok" : "error", "data-testid": "receipt-printed",
              text: rc.printed ? t("kiosk.printed") : t("kiosk.not_printed") }),
    el("button", { class: "touch primary big", "data-testid": "receipt-done", text: t("kiosk.done"), onclick: clearAll })));
  view.dataset.ref = rc.ref;
  view.hidden = false;
  $("#form-view").hidden = true;
  window.scrollTo(0, 0);                      // the receipt from its first line
}

function clearAll() {
  keyboard.hide();                           // and forget any pinyin the last customer left in it
  $("#lookup-view").hidden = true;
  $("#lookup-view").replaceChildren();
  form = emptyForm();
  page = 0;
  errors = {};
  $("#receipt-view").hidden = true;
  $("#receipt-view").replaceChildren();
  $("#form-error").textContent = "";
  renderForm();
  document.querySelectorAll(".error").forEach((n) => (n.textContent = ""));
  showCustomerSide();
  saveDraft();
}

// A half-typed complaint is back (a truck had the screen): it stays off the screen until the customer asks for
// it, so whoever stands here now (the truck's crew, staff) does not see the customer's name and number.
function offerDraft() {
  const box = $("#draft-offer");
  const resume = async () => {
    box.hidden = true;
    const draft = (await api("/api/kiosk/draft")).data.draft;      // asked again: it may have expired meanwhile
    if (!draft) { renderForm(); return; }
    const { wizard_page: at, ...fields } = draft;
    form = { ...emptyForm(), ...fields };
    page = Math.max(0, Math.min(PAGES.length - 1, Number(at) || 0));
    lastActivity = Date.now();
    renderForm();
  };
  $("#draft-resume").onclick = resume;
  $("#draft-discard").onclick = () => { box.hidden = true; clearAll(); };
  box.hidden = false;
}

// --- idle: warn, then clear what the last customer left ---
function idleTick() {
  const quiet = Date.now() - lastActivity;
  const overlay = $("#idle");
  // staff at work are not customers: their session lapses on the agent's side instead
  if (!touched() || !last || last.mode !== "kiosk" || staffShown) { overlay.hidden = true; return; }
  if (quiet >= IDLE) { overlay.hidden = true; clearAll(); lastActivity = Date.now(); return; }
  if (quiet >= IDLE - WARN) {
    overlay.hidden = false;
    $("#idle-text").textContent = t("kiosk.idle_warning", { s: Math.ceil((IDLE - quiet) / 1000) });
  } else overlay.hidden = true;
}
for (const ev of ["pointerdown", "keydown", "input"]) document.addEventListener(ev, () => { lastActivity = Date.now(); }, true);
$("#idle-continue").addEventListener("click", () => { lastActivity = Date.now(); $("#idle").hidden = true; });

// A wrong or unknown truck while the kiosk is up: customers see that staff are needed, staff see what and
// acknowledge it (a credential first).
function renderAlarm(v) {
  const root = $("#alarm");
  if (!v.site_alarms.length) { root.replaceChildren(); return; }
  root.replaceChildren(el("div", { class: "alarmbar" },
    el("div", { class: "alarmtexts" }, ...(v.staff
      ? v.site_alarms.slice(0, 2).map((a) => el("div", { "data-testid": `alarm-${a.kind}`, text: `${a.at.slice(0, 5)} ${a.text}` }))
      : [el("div", { "data-testid": "alarm-attention", text: t("alarm.attention") })])),
    el("button", { class: "touch", "data-testid": "alarm-ack", text: t("alarm.ack"),
                   onclick: (e) => { e.currentTarget.disabled = true; api("/api/alarms/ack", {}); } })));
}

// --- staff: a credential (finger or password) to leave, or to open the staff view ---
function renderPending(v) {
  const root = $("#pending");
  const p = v.pending_auth;
  if (!p || !["kiosk_exit", "staff_view"].includes(p.purpose)) { root.replaceChildren(); return; }
  if (root.dataset.purpose === p.purpose && root.firstChild) return;     // keep what is being typed
  root.dataset.purpose = p.purpose;
  const who = el("select", { class: "touch", "data-testid": "password-officer" },
    ...v.officers.map((o) => el("option", { value: o.person_id, text: o.name })));
  const pw = el("input", { type: "password", class: "touch", "data-testid": "password-input", autocomplete: "off",
                           placeholder: t("password") });
  const msg = el("div", { class: "error", "data-testid": "password-error" });
  root.replaceChildren(el("div", { class: "card pending", "data-testid": "pending-auth" },
    el("h2", { text: `${t("kiosk.purpose." + p.purpose)} · ${t("kiosk.waiting_officer")}` }),
    el("div", { class: "row" }, who, pw,
      el("button", { class: "touch primary", "data-testid": "password-submit", text: t("password_confirm"), onclick: async () => {
        const r = await api("/api/password", { person_id: who.value, password: pw.value });
        pw.value = "";
        msg.textContent = r.ok && r.data.ok ? "" : t("kiosk.password_wrong");
      } }),
      el("button", { class: "touch", "data-testid": "pending-cancel", text: t("cancel"), onclick: () => api("/api/cancel", {}) })),
    msg));
}

// Progress lookup (issue 17): the reference and the last 4 digits of the contact show status and promised date,
// nothing else; a wrong pair shows the same "nothing found" as an unknown reference.
function showLookup() {
  lastActivity = Date.now();
  const view = $("#lookup-view");
  const ref = el("input", { type: "text", class: "touch", "data-testid": "lookup-ref", maxlength: "40", autocomplete: "off", id: "lookup-ref" });
  const digits = el("input", { type: "tel", class: "touch", "data-testid": "lookup-digits", maxlength: "4", inputmode: "numeric",
                               autocomplete: "off", id: "lookup-digits" });
  const out = el("div", { class: "lookup-result", "data-testid": "lookup-result", "aria-live": "polite" });
  const go = el("button", { class: "touch primary big", "data-testid": "lookup-go", text: t("kiosk.lookup.go"), onclick: async () => {
    go.disabled = true;
    let r;
    try { r = await api(`/api/kiosk/lookup?lang=${lang}`, { ref: ref.value.trim(), digits: digits.value.trim() }); } finally { go.disabled = false; }
    digits.value = "";                 // typed again for another try: nothing of it stays on the screen
    keyboard.hide();
    if (r.ok && r.data.found) {
      out.className = "lookup-result found";
      out.replaceChildren(el("dl", {}, el("dt", { text: t("kiosk.lookup.ref") }), el("dd", { text: r.data.ref }),
        el("dt", { text: t("kiosk.lookup.status") }), el("dd", { "data-testid": "lookup-status", text: t("kiosk.status." + r.data.status) }),
        el("dt", { text: t("kiosk.lookup.reply_by") }), el("dd", { "data-testid": "lookup-reply-by", text: r.data.promised_reply })));
    } else {
      out.className = "lookup-result none";
      out.replaceChildren(el("p", { "data-testid": "lookup-none", text: t("kiosk.lookup.none") }));
    }
  } });
  view.replaceChildren(el("div", { class: "card" }, el("h2", { text: t("kiosk.lookup.title") }),
    el("p", { text: t("kiosk.lookup.hint") }),
    el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { for: "lookup-ref", text: t("kiosk.lookup.ref") }), ref),
      el("div", { class: "field" }, el("label", { for: "lookup-digits", text: t("kiosk.lookup.digits") }), digits)),
    out, el("div", { class: "contacts" }, ...contactSpans("lookup-contact")),
    el("div", { class: "actions" }, go, el("button", { class: "touch big", "data-testid": "lookup-back", text: t("kiosk.lookup.back"),
                                                       onclick: () => { clearAll(); } }))));
  view.hidden = false;
  $("#form-view").hidden = true;
  $("#receipt-view").hidden = true;
}

// Where customers can call or appeal (configured by the bank, or head office): on the first page, the lookup
// and the receipt.
function contactSpans(prefix = "contact") {
  const c = (options && options.contacts) || {};
  return ["hotline", "supervision_phone", "appeal_body"].filter((k) => c[k]).map((k) =>
    el("span", { "data-testid": `${prefix}-${k}`, text: t("kiosk.contacts." + k, { value: c[k] }) }));
}
function renderContacts() { $("#contacts").replaceChildren(...contactSpans()); }

function showCustomerSide() {
  const receipt = !$("#receipt-view").hidden;
  $("#form-view").hidden = receipt;
  $("#staff-view").hidden = true;
  $("#staff-view").replaceChildren();       // complaints' personal data leaves the page with the staff member
  staffShown = false;
}

async function showStaff() {
  const r = await api(`/api/staff/complaints?lang=${lang}`);
  if (r.status === 403) { await api("/api/staff/logout", {}); return; }
  staffShown = true;
  $("#form-view").hidden = true;
  $("#receipt-view").hidden = true;
  const d = r.data;
  const view = $("#staff-view");
  $("#lookup-view").hidden = true;
  const due = last && last.complaints_due;
  shownDue = JSON.stringify(due);
  view.replaceChildren(
    el("div", { class: "bar" }, el("h2", { text: `${t("kiosk.staff_title")} · ${t("kiosk.staff_by")}: ${d.name}` }),
      due && (due.near || due.overdue) ? el("span", { class: "badge bad", "data-testid": "due-summary", text: t("kiosk.due_summary", due) }) : null,
      el("button", { class: "touch", "data-testid": "staff-fill", text: t("kiosk.staff_fill"),
                     onclick: () => { fillFor = true; showCustomerSide(); renderForm(); } }),
      el("button", { class: "touch", "data-testid": "staff-logout", text: t("kiosk.logout"),
                     onclick: async () => { await api("/api/staff/logout", {}); } })),
    ...(d.complaints.length ? d.complaints.map((c) => complaintCard(c, d)) : [el("p", { text: t("kiosk.no_complaints") })]),
    reportPanel());
  view.hidden = false;
}

function complaintCard(c, d) {
  const nameOf = (pid) => (d.officers.find((o) => o.person_id === pid) || { name: pid }).name;
  const dl = (pairs) => el("dl", {}, ...pairs.filter(([, v]) => v).map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  const records = c.texts.map((x) => el("li", { text: `${x.at.slice(0, 16).replace("T", " ")} ${t("kiosk.action." + x.action)} · ${nameOf(x.by)}: ` +
    ["notes", "cause", "remedy", "handler_phone", "staff_opinion", "reply", "reason"].filter((k) => x[k]).map((k) => `${t("kiosk.field." + k)}：${x[k]}`).join("；") }));
  const slot = el("div", { class: "action-form" });
  return el("div", { class: "card complaint" + (c.overdue ? " overdue" : ""), "data-testid": `complaint-${c.ref}`,
                     "data-status": c.status, "data-overdue": c.overdue ? "true" : "false" },
    el("div", { class: "bar" }, el("strong", { class: "ref", text: c.ref }),
      el("span", { class: "badge", "data-testid": "complaint-status", text: t("kiosk.status." + c.status) }),
      el("span", { text: `${t("kiosk.category." + c.category)} · ${t("kiosk.channel." + c.channel)} · ${c.received_at}` }),
      el("span", { class: "deadline", text: `${t("kiosk.reply_by")}: ${c.reply_by}` }),
      c.overdue ? el("span", { class: "badge bad", "data-testid": "overdue", text: t("kiosk.overdue") }) : null,
      c.reopened ? el("span", { class: "badge", text: `${t("kiosk.reopened")} ×${c.reopened}` }) : null,
      c.escalations.length ? el("span", { class: "badge bad", "data-testid": "escalated",
        text: `${t("kiosk.escalated")}: ${c.escalations.map((x) => t("kiosk.trigger." + x)).join("、")}` }) : null,
      c.responsibility ? el("span", { class: "badge", text: `${t("kiosk.responsibility")}: ${t("kiosk.choice." + c.responsibility)}` }) : null,
      ...c.due.map((x) => el("span", { class: "badge " + (x.state === "overdue" ? "bad" : "warn"), "data-testid": `due-${x.limit}`,
        text: `${t("kiosk.limit." + x.limit)} ${x.due} ${t("kiosk.due." + x.state)}` }))),
    dl([[t("kiosk.name"), c.name || t("kiosk.anonymous")], [t("kiosk.contact"), c.contact],
        [t("kiosk.description"), c.description], [t("kiosk.request"), c.request], [t("kiosk.counter"), c.counter],
        [t("kiosk.staff_concerned"), c.staff_concerned.map(nameOf).join("、")],
        [t("kiosk.first_responder"), c.first_responder ? nameOf(c.first_responder) : ""]]),
    records.length ? el("ul", { class: "records", "data-testid": "records" }, ...records) : null,
    c.recused ? el("p", { class: "error", "data-testid": "recused", text: t("kiosk.recused") }) : null,
    el("div", { class: "choices" }, ...c.actions.map((a) => el("button", { class: "touch", "data-testid": `action-${c.ref}-${a}`,
      text: t("kiosk.action." + a), onclick: () => actionForm(slot, c, a, d) }))),
    slot);
}

function actionForm(slot, c, action, d) {
  const values = {};
  const inputs = d.action_fields[action].map(([name, kind]) => {
    const label = el("label", { text: t("kiosk.field." + name) });
    let input;
    if (Array.isArray(kind) || kind === "bool") {
      const opts = kind === "bool" ? [[true, t("kiosk.yes")], [false, t("kiosk.no")]] : kind.map((k) => [k, t("kiosk.choice." + k)]);
      input = el("div", { class: "choices" }, ...opts.map(([v, text]) => el("button", { type: "button", class: "touch choice",
        "data-testid": `param-${name}-${v}`, text, onclick: (e) => { values[name] = v;
          e.target.parentNode.querySelectorAll(".choice").forEach((b) => b.classList.remove("chosen")); e.target.classList.add("chosen"); } })));
    } else if (kind === "int") {
      input = el("input", { type: "tel", class: "touch", "data-testid": `param-${name}`, inputmode: "numeric",
                            oninput: (e) => { const n = e.target.value.trim(); if (n === "") delete values[name]; else values[name] = Number(n); } });
    } else if (kind === "staff") {
      input = el("select", { class: "touch", "data-testid": `param-${name}`, onchange: (e) => { values[name] = e.target.value; } },
        el("option", { value: "", text: t("kiosk.none") }), ...d.officers.map((o) => el("option", { value: o.person_id, text: o.name })));
    } else {
      input = el(kind === "long" ? "textarea" : "input", { class: "touch", "data-testid": `param-${name}`, rows: "2",
                                                           oninput: (e) => { values[name] = e.target.value; } });
    }
    return el("div", { class: "field" }, label, input);
  });
  const err = el("div", { class: "error", "data-testid": "action-error" });
  slot.replaceChildren(el("h3", { text: t("kiosk.action." + action) }), ...inputs, err,
    el("button", { class: "touch primary", "data-testid": "action-save", text: t("kiosk.save"), onclick: async () => {
      const r = await api(`/api/staff/complaints/${encodeURIComponent(c.ref)}/${action}`, values);
      if (!r.ok) { err.textContent = r.data.error || String(r.status); return; }
      showStaff();
    } }));
}

function reportPanel() {
  const today = last.now.slice(0, 10);           // the terminal's own day, not the browser's UTC one
  const start = el("input", { type: "date", class: "touch", "data-testid": "report-start", value: today.slice(0, 5) + (today.slice(5, 7) <= "06" ? "01-01" : "07-01") });
  const end = el("input", { type: "date", class: "touch", "data-testid": "report-end", value: today });
  const out = el("div", { class: "report", "data-testid": "report-output" });
  return el("div", { class: "card" }, el("h2", { text: t("kiosk.report") }),
    el("div", { class: "row" }, start, end, el("button", { class: "touch", "data-testid": "report-show", text: t("kiosk.report.show"),
      onclick: async () => {
        const r = await api(`/api/staff/report?start=${start.value}&end=${end.value}`);
        if (!r.ok) { out.textContent = r.data.error || String(r.status); return; }
        const x = r.data;
        out.replaceChildren(
          el("p", { text: `${t("kiosk.report.received")} ${x.received} · ${t("kiosk.report.resolved")} ${x.resolved} · ${t("kiosk.report.overdue")} ${x.overdue}` }),
          el("p", { text: `${t("kiosk.report.main_issues")}: ` + x.main_issues.map((m) => `${t("kiosk.category." + m.category)} ${m.count}`).join("、") }),
          el("ul", {}, ...Object.entries(x.by_category).map(([k, n]) => el("li", { text:
            `${t("kiosk.category." + k)}: ${t("kiosk.report.received")} ${n.received} · ${t("kiosk.report.resolved")} ${n.resolved} · ${t("kiosk.report.overdue")} ${n.overdue}` }))),
          el("h3", { text: t("kiosk.report.causes") }),
          el("ul", {}, ...x.causes_and_remedies.map((c) => el("li", { text: `${c.ref} ${t("kiosk.category." + c.category)}: ${c.cause} → ${c.remedy}` }))));
      } })), out);
}

// --- the agent's view: mode, staff session, pending credential ---
async function onView(v) {
  if (await loadLabels(v.lang, "kiosk.title")) keyboard.relabel();
  const first = last === null;
  last = v;
  idleFrom(v);
  if (v.mode !== "kiosk") {                  // a truck took the screen, or staff left the kiosk
    if (!leaving) { leaving = true; if (first) location.replace("/"); else saveDraft().finally(() => location.replace("/")); }
    return;
  }
  $("#site").textContent = v.site.name;
  syncClock(v.now);
  renderAlarm(v);
  renderPending(v);
  $("#exit-button").hidden = $("#staff-button").hidden = !!v.pending_auth;
  $("#lookup-button").hidden = !!v.pending_auth || !!v.staff;
  renderContacts();
  const due = JSON.stringify(v.complaints_due);
  if (v.staff && !staffShown && !fillFor) await showStaff();
  else if (staffShown && due !== shownDue && !$("#staff-view").contains(document.activeElement)) await showStaff();  // reminders changed
  else if (!v.staff && (staffShown || fillFor)) { fillFor = false; showCustomerSide(); renderForm(); }
  if (first) {
    const r = await api("/api/kiosk/draft");
    renderForm();
    if (r.data.draft) offerDraft();
  }
  document.body.dataset.version = v.version;
}

$("#submit").addEventListener("click", submit);
$("#next").addEventListener("click", () => turn(1));
$("#prev").addEventListener("click", () => turn(-1));
// clearing throws away what was typed: ask first
$("#clear").addEventListener("click", () => { $("#confirm-clear").hidden = false; });
$("#clear-yes").addEventListener("click", () => { $("#confirm-clear").hidden = true; clearAll(); });
$("#clear-no").addEventListener("click", () => { $("#confirm-clear").hidden = true; });
$("#exit-button").addEventListener("click", () => api("/api/kiosk/exit", {}));
$("#staff-button").addEventListener("click", () => api("/api/kiosk/staff", {}));
$("#lookup-button").addEventListener("click", showLookup);

let busy = Promise.resolve();
function connect() {
  const es = new EventSource("/api/events");
  es.onmessage = (m) => {
    const v = JSON.parse(m.data);
    if (last && v.version === last.version && v.lang === last.lang) return;
    busy = busy.then(() => onView(v));       // one view at a time, in order
  };
  es.onerror = () => { es.close(); setTimeout(connect, 1000); };
}

(async () => {
  startClock($("#clock"));
  options = (await api("/api/kiosk/options")).data;
  connect();
  setTimeout(renderContacts, 300);            // after the labels of the screen's language are in
  setInterval(idleTick, 250);
})();
