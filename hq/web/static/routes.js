// The route board: each truck's route of the day, stop by stop, judged at head office (hq/routes.py).
// A route's card is replaced when the board's event stream pushes it again (`route`, at each committed
// handover entry); the whole day is read again every 30 s, since windows run out without any entry.
"use strict";

let day = null;
const cards = new Map();            // task_id -> route

function stopNode(s) {
  const facts = [];
  if (s.arrived) facts.push(T("routes_arrived", { time: s.arrived }));
  if (s.ended) facts.push(T("routes_ended", { time: s.ended }));
  if (s.outcome && s.outcome !== "completed") facts.push(T(`routes_outcome_${s.outcome}`));
  const counts = s.state === "done" || s.state === "at_door" ? el("div", { class: "counts" },
    el("span", { "data-testid": "stop-escorts", text: T("routes_verified", { n: s.escorts_verified.length, total: s.escorts_planned }) }),
    el("span", { "data-testid": "stop-boxes", text: T("routes_boxes", { n: s.boxes_counted, total: s.boxes_planned }) }),
    s.officer ? el("span", { text: T("routes_officer") }) : null) : null;
  return el("li", { class: `stop ${s.state}`, "data-testid": "route-stop", "data-state": s.state, "data-site": s.site_id },
    el("div", { class: "pos", text: String(s.position) }),
    el("div", { class: "body" },
      el("div", { class: "site", text: s.site }),
      el("div", { class: "window", text: s.window }),
      el("div", { class: "state", "data-testid": "stop-state", text: T(`routes_state_${s.state}`) }),
      facts.length ? el("div", { class: "facts", text: facts.join(" · ") }) : null,
      counts));
}

function cardNode(r) {
  const skip = r.skipped.length > 0;
  return el("section", { class: `route-card${skip ? " skip" : ""}`, "data-testid": "route-card", "data-route": r.route,
                         "data-task": r.task_id },
    el("h2", {}, el("span", { text: T("routes_route", { route: r.route }) }), el("span", { class: "plate", text: r.plate }),
      el("span", { class: "kind", text: T(`routes_kind_${r.kind}`) })),
    el("div", { class: "escorts", text: `${T("routes_escorts")}: ${r.escorts.join(T("routes_list_sep"))}` }),
    el("ol", { class: "stops" }, ...r.stops.map(stopNode)));
}

function skipText(r) {
  return T("routes_skip", { plate: r.plate, route: r.route, sites: r.skipped_names.join(T("routes_list_sep")) });
}

function render(at) {
  const list = [...cards.values()];
  document.getElementById("cards").replaceChildren(...list.map(cardNode));
  document.getElementById("skips").replaceChildren(...list.filter((r) => r.skipped.length).map((r) =>
    el("p", { class: "route-skip", "data-testid": "route-skip", "data-route": r.route, text: skipText(r) })));
  document.getElementById("routes-empty").hidden = list.length > 0;
  if (at) document.getElementById("updated").textContent = T("routes_updated", { time: at });
}

async function load() {
  const found = await api(`/api/routes?date=${encodeURIComponent(day || "")}`);
  day = found.day;                  // none asked: today on head office's schedule clock
  document.getElementById("day").value = day;
  cards.clear();
  for (const r of found.routes) cards.set(r.task_id, r);
  render(found.at);
}

function listen() {
  const source = new EventSource(`/api/events?lang=${encodeURIComponent(me.lang)}`);
  const lost = document.getElementById("lost");
  source.addEventListener("open", () => { if (!lost.hidden) { lost.hidden = true; load(); } });
  source.addEventListener("error", () => { lost.hidden = false; });
  source.addEventListener("route", (e) => {
    const r = JSON.parse(e.data);
    if (r.day !== day) return;
    cards.set(r.task_id, r);
    render();
  });
}

async function main() {
  me = await api(`/api/me?lang=${document.documentElement.lang}`);
  document.querySelector("[data-testid=who]").textContent = `${me.name} · ${me.role_text}`;
  const input = document.getElementById("day");
  day = new URLSearchParams(location.search).get("date");
  input.addEventListener("change", () => { if (input.value) { day = input.value; load(); } });
  listen();
  await load();
  setInterval(load, 30000);
  document.body.setAttribute("data-ready", "true");
}

main();
