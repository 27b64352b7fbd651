"""The handover report as printed lines in the screen's language (the printer renders them)."""
from __future__ import annotations

from agent.i18n import label
from flows.model import Person
from flows.report import HandoverReport

_WORDS = {
    "zh-CN": {"title": "款箱交接报告", "task": "任务编号", "kind": "任务类型", "site": "网点", "plate": "车牌",
              "arrived": "到达", "manual": "（手工登记）", "ended": "结束", "outcome": "结果",
              "people": "人员", "verified": "验证", "mark": "留痕", "boxes": "款箱", "planned": "计划",
              "counted": "清点", "uid_only": "仅UID标签", "exceptions": "异常", "dispositions": "风险处置",
              "restarts": "任务重启次数", "none": "无", "method": "确认方式", "password": "密码", "fingerprint": "指纹",
              "escort": "押运员", "escort_lead": "押运组长", "officer": "营业专员"},
    "en": {"title": "Handover report", "task": "Task", "kind": "Kind", "site": "Site", "plate": "Plate",
           "arrived": "Arrived", "manual": " (manual)", "ended": "Ended", "outcome": "Outcome",
           "people": "People", "verified": "verified", "mark": "mark", "boxes": "Boxes", "planned": "planned",
           "counted": "counted", "uid_only": "UID-only tags", "exceptions": "Exceptions",
           "dispositions": "Dispositions", "restarts": "Task restarts", "none": "none", "method": "Confirmed by",
           "password": "password", "fingerprint": "fingerprint",
           "escort": "Escort", "escort_lead": "Escort lead", "officer": "Officer"},
}


def _detail(value) -> str:
    return "、".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def report_lines(r: HandoverReport, people: dict[str, Person], lang: str) -> tuple[str, list[str]]:
    w = _WORDS[lang]
    name = lambda pid: people[pid].name if pid in people else pid  # noqa: E731
    t = lambda iso: (iso or "—").replace("T", " ")[:19]  # noqa: E731
    hms = lambda iso: (iso or "—")[11:19] or "—"  # noqa: E731  (the date is on the arrival line)
    lines = [
        f"{w['task']}: {r.task_id}",
        f"{w['kind']}: {label('kind.' + r.kind, lang)}",
        f"{w['site']}: {r.site_id}",
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
        detail = " ".join(_detail(v) for k, v in x.items() if k not in ("kind", "at", "snapshot", "station"))
        lines.append(f"  {hms(x['at'])} {label('alarm.' + x['kind'], lang)} {detail}".rstrip())
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
