"""The handover report as printed lines in the screen's language (the printer renders them)."""
from __future__ import annotations

from agent.i18n import catalog, label
from flows.model import Person
from flows.report import HandoverReport

_WORD = "report.line."          # the report's words in the catalogs: "report.line.<word>"


def report_lines(r: HandoverReport, people: dict[str, Person], lang: str, site_name: str) -> tuple[str, list[str]]:
    """site_name: the site as people know it (its code where no name is known)."""
    w = {k[len(_WORD):]: v for k, v in catalog(lang)["ui"].items() if k.startswith(_WORD)}
    detail = lambda v: w["list_sep"].join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)  # noqa: E731
    name = lambda pid: people[pid].name if pid in people else pid  # noqa: E731
    t = lambda iso: (iso or "—").replace("T", " ")[:19]  # noqa: E731
    hms = lambda iso: (iso or "—")[11:19] or "—"  # noqa: E731  (the date is on the arrival line)
    lines = [
        f"{w['task']}: {r.task_id}",
        f"{w['kind']}: {label('kind.' + r.kind, lang)}",
        f"{w['site']}: {site_name}",
        f"{w['plate']}: {r.plate}",
        f"{w['arrived']}: {t(r.arrived_at)}{w['manual'] if r.arrival_manual else ''}",
        f"{w['ended']}: {t(r.ended_at)}",
        f"{w['outcome']}: {label('status.' + (r.outcome or 'in_progress'), lang)}",
        f"{w['people']}:",
    ]
    for p in r.people:
        lines.append(f"  {w[p.role]} {name(p.person_id)} ({p.person_id})")
        lines.append(f"    {w['verified']} {hms(p.verified_at)}  {w['mark']} {hms(p.marked_at)}")
    if r.officer_method:
        lines.append(f"{w['method']}: {w[r.officer_method]}")
    lines.append(f"{w['boxes']}: {w['planned']} {len(r.boxes_planned)} / {w['counted']} {len(r.boxes_counted)}")
    lines += [f"  {b}" for b in r.boxes_counted]
    if r.uid_only_boxes:
        lines.append(f"{w['uid_only']}: {', '.join(r.uid_only_boxes)}")
    lines.append(f"{w['exceptions']}: {'' if r.exceptions else w['none']}")
    for x in r.exceptions:
        detail_text = " ".join(detail(v) for k, v in x.items() if k not in ("kind", "at", "snapshot", "station"))
        lines.append(f"  {hms(x['at'])} {label('alarm.' + x['kind'], lang)} {detail_text}".rstrip())
    if r.dispositions:
        lines.append(f"{w['dispositions']}:")
        for d in r.dispositions:
            lines.append(f"  {hms(d['at'])} {name(d['officer_id'])}: {label('disposition.' + d['code'], lang)}"
                         f" / {label('disposition.' + d['resolution'], lang)}")
            if d["text"]:
                lines.append(f"    {d['text']}")
    if r.restarts:
        lines.append(f"{w['restarts']}: {r.restarts}")
    return w["title"], lines
