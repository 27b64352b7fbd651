// The records page: search handovers, open one (report, timeline, alarms, dispositions, faces beside the
// enrolled photos, chain check), export it. Every text goes in through textContent, never as HTML.
"use strict";

let me = null;
const say = (k, params = {}) => (me.text[k] ?? k).replace(/\{(\w+)\}/g, (_, p) => params[p] ?? "");
const known = (k, fallback) => (k in me.text ? me.text[k] : fallback);

function make(tag, props, kids) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "click") node.addEventListener("click", value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const kid of kids || []) if (kid) node.append(kid);
  return node;
}

async function getJson(path) {
  const r = await fetch(path, { credentials: "same-origin" });
  if (r.status === 401) { location.href = "/login"; throw new Error("login required"); }
  if (!r.ok) throw new Error(await r.text());
  return r.json();
}

const clock = (iso) => (iso ? iso.replace("T", " ").slice(0, 19) : "—");
const outcomeText = (o) => say(`records_outcome_${o || "none"}`);
const enc = encodeURIComponent;

function word() {
  document.documentElement.lang = me.lang;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = say(node.dataset.i18n);
  document.title = say("records_title");
  const other = me.lang === "zh-CN" ? "en" : "zh-CN";
  document.getElementById("lang-switch").setAttribute("href", `/records?lang=${other}`);
  document.querySelector("[data-testid=who]").textContent = `${me.name} · ${me.role_text}`;
}

async function runSearch(event) {
  if (event) event.preventDefault();
  const form = new FormData(document.getElementById("search"));
  const query = new URLSearchParams();
  for (const [k, v] of form) if (String(v).trim()) query.set(k, String(v).trim());
  const error = document.getElementById("search-error");
  let list;
  try {
    list = await getJson(`/api/records?${query}`);
    error.hidden = true;
  } catch (e) {
    error.textContent = e.message; error.hidden = false; return;
  }
  document.getElementById("rows").replaceChildren(...list.map((r) =>
    make("tr", { class: `record ${r.exceptions ? "exception" : ""}`, "data-testid": "record-row",
                 "data-device": r.device, "data-handover": r.handover, tabindex: 0,
                 click: () => openRecord(r.device, r.handover) }, [
      make("td", { text: clock(r.arrived_at || r.ended_at) }), make("td", { text: r.site }),
      make("td", { text: r.plate }), make("td", { text: known(`records_kind_${r.kind}`, r.kind) }),
      make("td", { text: `${r.boxes_counted} / ${r.boxes_planned}` }),
      make("td", { "data-testid": "record-outcome", text: outcomeText(r.outcome) }), make("td", { text: r.device }),
    ])));
  document.getElementById("empty").hidden = list.length > 0;
  document.body.setAttribute("data-searched", String(Date.now()));
}

function personName(d, pid) {
  const p = d.people[pid];
  return p && p.name ? `${p.name} (${pid})` : pid || "—";
}

function whatText(d, line) {
  const w = line.what;
  const parts = [];
  if (w.alarm) parts.push(known(`kind_${w.alarm}`, w.alarm));
  if (w.person_id) parts.push(personName(d, w.person_id));
  if (w.station) parts.push(known(`records_station_${w.station}`, w.station));
  if (w.outcome) parts.push(known(`records_attempt_${w.outcome}`, w.outcome));
  if (w.box) parts.push(w.box);
  if (w.plate) parts.push(w.plate);
  if (w.code) parts.push(w.code);
  return parts.join(" · ");
}

function faces(d) {
  const wrap = make("div", { class: "faces" });
  if (!d.faces.length) wrap.append(make("p", { class: "empty", text: say("records_no_faces") }));
  for (const f of d.faces) {
    const enrolled = f.person_id && d.people[f.person_id] && d.people[f.person_id].photo
      ? make("img", { src: `/api/person-photo/${enc(f.person_id)}`, alt: say("records_enrolled"),
                      "data-testid": "record-enrolled-photo" })
      : make("div", { class: "no-photo", text: say("records_no_enrolled") });
    let live;
    if (!d.faces_shown) live = make("div", { class: "no-photo", text: say("records_faces_restricted") });
    else if (!f.held) live = make("div", { class: "no-photo", "data-testid": "record-snapshot-missing",
                                           text: say("records_snapshot_missing") });
    else live = make("img", { src: `/api/snapshot/${enc(d.device)}/${enc(f.hash)}`, alt: say("records_snapshot"),
                              "data-testid": "record-snapshot", "data-hash": f.hash });
    wrap.append(make("figure", { class: "face", "data-testid": "record-face", "data-person": f.person_id }, [
      make("div", { class: "pair" }, [
        make("div", {}, [enrolled, make("figcaption", { text: say("records_enrolled") })]),
        make("div", {}, [live, make("figcaption", { text: say("records_snapshot") })]),
      ]),
      make("figcaption", { text: `${clock(f.local)} · ${personName(d, f.person_id)} · ${known(`records_attempt_${f.outcome}`, f.outcome || "")}` }),
    ]));
  }
  return wrap;
}

function table(head, rows) {
  return make("table", {}, [
    make("thead", {}, [make("tr", {}, head.map((h) => make("th", { text: say(h) })))]),
    make("tbody", {}, rows.map((cells) => make("tr", {}, cells.map((c) => make("td", { text: c }))))),
  ]);
}

async function openRecord(device, handover) {
  const d = await getJson(`/api/records/${enc(device)}/${enc(handover)}`);
  const r = d.report;
  const chain = d.chain.ok
    ? make("p", { class: "chain ok", "data-testid": "record-chain-ok", text: say("records_chain_ok", { start: d.chain.from, end: d.chain.to }) })
    : make("p", { class: "chain broken", "data-testid": "record-chain-broken", text: say("records_chain_broken", { seq: d.chain.seq, problem: d.chain.problem }) });
  const facts = [
    ["records_task", r.task_id], ["records_site", d.site], ["records_truck", r.plate],
    ["records_col_kind", known(`records_kind_${r.kind}`, r.kind)],
    ["records_arrived", clock(r.arrived_at) + (r.arrival_manual ? say("records_manual") : "")],
    ["records_ended", clock(r.ended_at)], ["records_col_outcome", outcomeText(r.outcome)],
    ["records_col_boxes", `${(r.boxes_counted || []).length} / ${(r.boxes_planned || []).length}  ${(r.boxes_counted || []).join(", ")}`],
  ];
  const section = document.getElementById("detail");
  section.replaceChildren(
    make("h2", { text: say("records_detail_title", { task: r.task_id }) }),
    make("div", { class: "record-actions" }, [
      chain,
      make("a", { href: `/api/records/${enc(device)}/${enc(handover)}/export?lang=${me.lang}`, download: "",
                  "data-testid": "record-export", class: "button", text: say("records_export") }),
    ]),
    make("dl", { class: "facts", "data-testid": "record-report" },
      facts.flatMap(([k, v]) => [make("dt", { text: say(k) }), make("dd", { text: v })])),
    make("h3", { text: say("records_people") }),
    table(["records_col_role", "records_person", "records_verified", "records_marked"],
      (r.people || []).map((p) => [say(`records_role_${p.role}`), personName(d, p.person_id), clock(p.verified_at), clock(p.marked_at)])),
    make("h3", { text: say("records_faces") }), faces(d),
    make("h3", { text: say("records_alarms") }),
    d.alarms.length ? table(["records_col_time", "records_col_kind"], d.alarms.map((a) => [clock(a.local), known(`kind_${a.alarm}`, a.alarm)]))
      : make("p", { class: "empty", text: say("records_none") }),
    make("h3", { text: say("records_dispositions") }),
    d.dispositions.length ? table(["records_col_time", "records_person", "records_col_kind", "records_note"],
      d.dispositions.map((x) => [clock(x.at), personName(d, x.officer_id), `${x.code} / ${x.resolution}`, x.text || ""]))
      : make("p", { class: "empty", text: say("records_none") }),
    make("h3", { text: say("records_timeline") }),
    make("ol", { class: "timeline", "data-testid": "record-timeline" }, d.timeline.map((line) =>
      make("li", { "data-testid": "record-event", "data-kind": line.kind, "data-seq": line.seq }, [
        make("span", { class: "at", text: clock(line.local) }),
        make("span", { class: "kind", text: known(`records_kind_${line.kind}`, line.kind) }),
        make("span", { class: "what", text: whatText(d, line) }),
      ]))),
  );
  section.hidden = false;
  section.dataset.device = device;
  section.dataset.handover = handover;
  section.scrollIntoView({ block: "start" });
}

async function main() {
  const lang = new URLSearchParams(location.search).get("lang");
  me = await getJson(`/api/me${lang ? `?lang=${enc(lang)}` : ""}`);
  word();
  document.getElementById("search").addEventListener("submit", runSearch);
  await runSearch();
  document.body.setAttribute("data-ready", "true");
}

main();
