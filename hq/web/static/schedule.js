// The schedule upload page: one dispatch file in, and what became of it: the version published to which
// sites (over MQTT, or as USB bundles to download for offline sites), or every bad row with nothing applied.
"use strict";

function show(status, answer) {
  const box = document.getElementById("result");
  box.replaceChildren();
  if (answer.errors.length) {
    box.dataset.state = "refused";
    box.append(el("h2", { class: "bad", text: T("schedule_refused", { n: answer.errors.length }) }),
      el("ul", { class: "problems" }, ...answer.errors.map((e) =>
        el("li", { "data-testid": "schedule-error", "data-row": e.row,
                   text: e.row ? T("schedule_row_problem", { row: e.row, column: e.column, why: e.why }) : e.message }))));
    return;
  }
  box.dataset.state = "imported";
  box.append(el("h2", { class: "good", text: T("schedule_imported", { rows: answer.rows, tasks: answer.tasks }) }));
  const rows = [];
  for (const [day, sites] of Object.entries(answer.versions)) {
    for (const [site, version] of Object.entries(sites)) {
      const how = answer.published.includes(site) ? T("schedule_via_mqtt")
        : answer.bundles.includes(site) ? T("schedule_via_usb")
        : answer.no_terminal.includes(site) ? T("schedule_no_terminal") : T("schedule_not_sent");
      rows.push(el("tr", { "data-testid": "schedule-site", "data-site": site, "data-day": day },
        el("td", { text: day }), el("td", { text: site }), el("td", { "data-testid": "schedule-version", text: `v${version}` }),
        el("td", { text: how }), el("td", { "data-testid": "schedule-applied", "data-state": "" })));
    }
  }
  if (rows.length) {
    box.append(el("table", {},
      el("thead", {}, el("tr", {}, ...["schedule_col_day", "schedule_col_site", "schedule_col_version",
                                       "schedule_col_sent", "schedule_col_applied"].map((k) => el("th", { text: T(k) })))),
      el("tbody", {}, ...rows)));
  } else {
    box.append(el("p", { class: "empty", text: T("schedule_unchanged") }));
  }
  if (answer.downloads.length) {
    box.append(el("h3", { text: T("schedule_bundles") }),
      el("ul", {}, ...answer.downloads.map((d) => el("li", {},
        el("a", { href: d.url, download: d.name, "data-testid": "schedule-bundle", "data-site": d.site,
                  text: `${d.site} · ${d.device} · ${d.name}` })))));
  }
  if (answer.notes.length) {
    box.append(el("ul", { class: "notes" }, ...answer.notes.map((n) => el("li", { class: "note", text: n }))));
  }
  follow(Object.keys(answer.versions));
}

// published is not applied: ask head office what each terminal did with it, for a few minutes
let following = null;
function follow(days) {
  clearInterval(following);
  const until = Date.now() + 5 * 60 * 1000;
  const check = async () => {
    if (Date.now() > until) { clearInterval(following); return; }
    for (const day of days) {
      const r = await fetch(`/api/schedule/status?day=${encodeURIComponent(day)}`, { credentials: "same-origin" });
      if (!r.ok) continue;
      const bySite = new Map();
      for (const row of await r.json()) {
        if (row.device) (bySite.get(row.site) || bySite.set(row.site, []).get(row.site)).push(row);
      }
      for (const tr of document.querySelectorAll(`[data-testid=schedule-site][data-day="${day}"]`)) {
        const rows = bySite.get(tr.dataset.site) || [];
        const cell = tr.querySelector("[data-testid=schedule-applied]");
        const states = rows.map((x) => x.state);
        cell.dataset.state = !rows.length ? "" : states.every((x) => x === "applied") ? "applied"
          : states.some((x) => x.startsWith("refused")) ? "refused" : "waiting";
        cell.textContent = rows.map((x) => `${x.device}: ${x.state === "applied" ? T("schedule_state_applied")
          : x.state.startsWith("refused") ? T("schedule_state_refused", { why: x.state.slice(9) })
          : x.channel === "usb" ? T("schedule_state_bundle") : T("schedule_state_waiting")}`).join("；");
      }
    }
  };
  following = setInterval(() => { check().catch(() => {}); }, 2000);
  check().catch(() => {});
}

async function submit(e) {
  e.preventDefault();
  if (!me) return;                   // still loading: the next press goes through
  const input = document.getElementById("file");
  if (!input.files.length) return;
  const form = new FormData();
  form.append("file", input.files[0]);
  const button = e.submitter || document.querySelector("[data-testid=schedule-submit]");
  button.disabled = true;
  try {
    const r = await fetch("/api/schedule", { method: "POST", body: form, credentials: "same-origin",
                                            headers: { "X-CSRF-Token": me.csrf } });
    if (r.status === 401) { location.href = "/login"; return; }
    let answer;
    try { answer = await r.json(); } catch { answer = { errors: [{ row: 0, message: `HTTP ${r.status}` }] }; }
    show(r.status, answer);
  } finally {
    button.disabled = false;
  }
}

async function start() {
  me = await api("/api/me");
  header();
  document.body.dataset.ready = "true";
}

// at once, not after /api/me: a press before it answers must not fall through to the browser's own GET submit
document.getElementById("upload").addEventListener("submit", submit);
start();
