// Past handovers (交接记录), for staff only: search by day, truck and box; open one for its report and
// timeline; reprint it as a copy. One step per screen at 800×480: the list, or one record. Self-contained:
// app.js calls renderRecords(v). Everything goes in through textContent (el), so no record becomes markup.
"use strict";
let rec = null;        // null: closed; else {step: "list"|"detail", day, plate, box, rows, detail, tab, note}

// the open records screen is rebuilt only when it changed itself, so a screen push never takes a field's focus
function recRender() { if (rec) rec.dirty = true; if (last) render(last); }

function isoDay(d) { return d.toISOString().slice(0, 10); }
function shiftDay(iso, n) { const d = new Date(iso + "T12:00:00Z"); d.setUTCDate(d.getUTCDate() + n); return isoDay(d); }

let recAsked = 0;      // the latest search asked for: an earlier answer arriving late is dropped

async function recordsSearch() {
  const asked = ++recAsked;
  const q = new URLSearchParams({ lang });
  if (rec.day) q.set("date", rec.day);
  if (rec.plate) q.set("plate", rec.plate);
  if (rec.box) q.set("box", rec.box);
  const r = await api(`/api/staff/records?${q}`);
  if (!rec || asked !== recAsked) return;
  if (!r.ok) { rec = null; recRender(); return; }      // the session lapsed: the list goes with it
  rec.rows = r.data.records;
  rec.answered = `${q.get("date") || ""}|${q.get("plate") || ""}|${q.get("box") || ""}`;     // what the list shows
  rec.today = r.data.today;
  recRender();
}

async function recordsOpen(taskId) {
  const r = await api(`/api/staff/records/${encodeURIComponent(taskId)}?lang=${lang}`);
  if (!r.ok) return;
  const same = rec.step === "detail" && rec.detail && rec.detail.task_id === taskId;    // worded again: same tab
  rec.step = "detail"; rec.detail = r.data;
  if (!same) { rec.tab = "report"; rec.note = ""; }
  recRender();
}

function recordRow(x) {
  const facts = [`${x.day.slice(5)} ${x.arrived}`, x.plate, x.task_id, t("status." + x.outcome),
                 t("records.boxes", { counted: x.boxes, planned: x.planned }),
                 x.alarms.length ? t("records.alarms", { list: x.alarms.join("、") }) : t("records.no_alarms")];
  if (x.dispositions.length) facts.push(t("records.dispositions", { list: x.dispositions.join("、") }));
  if (x.reprints) facts.push(t("records.reprints", { n: x.reprints }));
  return el("button", { class: "touch record-row" + (x.alarms.length ? " had-alarm" : ""), "data-testid": `record-${x.task_id}`,
                        onclick: () => recordsOpen(x.task_id) }, el("span", { text: facts.join(" · ") }));
}

function recordsList() {
  const field = (key, testid, max) => el("input", { type: "text", class: "touch", "data-testid": testid, maxlength: String(max),
    placeholder: t(key), value: rec[key.split(".")[1]] || "", autocomplete: "off",
    oninput: (e) => { rec[key.split(".")[1]] = e.target.value; } });
  const dayLabel = rec.day ? (rec.day === rec.today ? `${rec.day} ${t("records.today")}` : rec.day) : t("records.any_day");
  const go = (fn) => () => { fn(); recordsSearch(); };
  const search = el("div", { class: "records-search" },
    el("button", { class: "touch", "data-testid": "records-prev-day", text: t("records.prev_day"),
                   onclick: go(() => { rec.day = shiftDay(rec.day || rec.today, -1); }) }),
    el("span", { class: "records-day", "data-testid": "records-day", text: dayLabel }),
    el("button", { class: "touch", "data-testid": "records-next-day", text: t("records.next_day"),
                   onclick: go(() => { rec.day = shiftDay(rec.day || rec.today, 1); }) }),
    el("button", { class: "touch" + (rec.day ? "" : " chosen"), "data-testid": "records-any-day", text: t("records.any_day"),
                   onclick: go(() => { rec.day = null; }) }),
    field("records.plate", "records-plate", 20), field("records.box", "records-box", 40),
    el("button", { class: "touch primary", "data-testid": "records-search", text: t("records.search"), onclick: () => recordsSearch() }));
  const rows = rec.rows || [];
  return [search, el("div", { class: "muted", "data-testid": "records-count", text: rows.length ? t("records.count", { n: rows.length }) : t("records.none") }),
          el("div", { class: "records-list", "data-testid": "records-list", "data-query": rec.answered || "" }, ...rows.map(recordRow))];
}

function recordsDetail() {
  const d = rec.detail;
  const tabs = el("div", { class: "records-tabs" }, ...["report", "timeline"].map((k) => el("button", {
    class: "touch choice" + (rec.tab === k ? " chosen" : ""), "data-testid": `records-tab-${k}`, "aria-pressed": rec.tab === k ? "true" : "false",
    text: t("records." + k), onclick: () => { rec.tab = k; recRender(); } })));
  const body = rec.tab === "report"
    ? el("div", { class: "receipt", "data-testid": "records-report", text: [d.title, ...d.lines].join("\n") })
    : el("ol", { class: "timeline", "data-testid": "records-timeline" }, ...d.timeline.map((x) =>
        el("li", { class: "tl-" + x.kind }, el("span", { class: "at", text: x.at }), el("span", { text: x.text }))));
  const reprint = actionButton({ class: "touch primary", "data-testid": "records-reprint", text: t("records.reprint") }, async (rid) => {
    const r = await api(`/api/staff/records/${encodeURIComponent(d.task_id)}/reprint`, {}, rid);
    rec.note = r.ok && r.data.printed ? t("records.reprinted", { copy: r.data.copy }) : t("records.reprint_failed");
    rec.noteOk = r.ok && r.data.printed;
    if (r.ok) d.reprints = r.data.copy;
    recRender();
    return false;                     // another copy may be asked for
  });
  return [el("div", { class: "records-head" }, el("span", { class: "plate", text: d.plate }),
             el("span", { text: `${d.task_id} · ${d.day} ${d.arrived}–${d.ended} · ${t("status." + d.outcome)}` })),
          el("div", { class: "records-foot" }, tabs, reprint,      // the controls stay in sight; the record scrolls
             el("span", { class: "records-note" + (rec.noteOk ? " ok" : " bad"), "data-testid": "records-note", text: rec.note || "" })),
          body];
}

function renderRecords(v) {
  let root = $("#records");
  if (!root) { root = el("section", { id: "records" }); $("#public").before(root); }
  const allowed = !!v.staff && !v.handover && !v.pending_auth && !(v.enrolment && v.enrolment.current);
  if (!allowed) rec = null;
  document.body.classList.toggle("records-open", !!rec);
  if (rec && rec.lang !== v.lang) {          // another language: the agent words the list and timeline again
    rec.lang = v.lang;
    if (rec.step === "detail" && rec.detail) recordsOpen(rec.detail.task_id); else if (rec.rows) recordsSearch();
    rec.dirty = true;
  }
  if (rec && !rec.dirty && root.firstChild && root.firstChild.dataset.testid === "records") return;
  if (rec) rec.dirty = false;
  root.replaceChildren();
  if (!allowed) return;
  if (!rec) {
    root.append(el("button", { class: "touch", "data-testid": "records-open", text: t("records.open"),
      onclick: () => { rec = { step: "list", day: v.now.slice(0, 10), today: v.now.slice(0, 10), plate: "", box: "", rows: null, dirty: true,
                              lang: v.lang }; recordsSearch(); } }));
    return;
  }
  root.append(el("div", { class: "card records", "data-testid": "records", "data-step": rec.step },
    el("div", { class: "records-title" }, el("h2", { text: t("records.title") }),
       rec.step === "detail"        // back where the eye starts, top right: the bottom corner is the simulator's
         ? el("button", { class: "touch", "data-testid": "records-back", text: t("records.back"),
                          onclick: () => { rec.step = "list"; rec.detail = null; recordsSearch(); } })
         : el("button", { class: "touch", "data-testid": "records-close", text: t("records.close"),
                          onclick: () => { rec = null; recRender(); } })),
    ...(rec.step === "detail" && rec.detail ? recordsDetail() : recordsList())));
}
