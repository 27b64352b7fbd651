"""The handover report as an officer gets it (issue 3): a finished handover with an exception and its
disposition, Chinese names and all, printed through python-escpos and rendered to PNG to look at."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from test_printer import raster_images

from agent.report_text import report_lines
from drivers.printer.escpos import EscposPrinter
from flows.events import BoxPresented, DispositionRecorded, FingerPresented, VehicleArrived
from flows.handover import Handover
from flows.model import Box, Person, Role, Site, SiteType, Task, TaskKind, Vehicle
from flows.report import build_report

T0 = datetime(2026, 11, 23, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
PEOPLE = {p.person_id: p for p in (Person("E01", "欧阳志远", Role.ESCORT), Person("E02", "李军", Role.ESCORT),
                                   Person("O01", "周敏", Role.OFFICER))}


def finished_handover() -> Handover:
    boxes = (Box("XB-01", "04AA01", "BR-001"), Box("XB-02", "04AA02", "BR-001"), Box("XB-09", "04AA09", "BR-002"))
    task = Task("T1123-01", 1, TaskKind.DELIVERY, T0 - timedelta(minutes=30), T0 + timedelta(hours=1),
                ("VLT-01", "BR-001"), Vehicle("V1", "沪A·C1234", "b1"), ("E01", "E02"), boxes, ("O01",))
    h = Handover(task, Site("BR-001", SiteType.BRANCH), PEOPLE)
    t = iter(T0 + timedelta(seconds=20 * i) for i in range(100))
    for ev in (VehicleArrived("b1", stops_done=frozenset({"VLT-01"})),
               FingerPresented("door", "match", "E01"), FingerPresented("door", "match", "E02"),
               BoxPresented("04AA01", boxes[0]), BoxPresented("04AA09", boxes[2]),
               DispositionRecorded("O01", "box_set_aside", "错箱已退回押运车", "continue"),
               BoxPresented("04AA02", boxes[1]), FingerPresented("counter", "match", "O01"),
               FingerPresented("door", "match", "E01"), FingerPresented("counter", "match", "O01")):
        h.handle(ev, next(t))
    assert h.outcome is not None
    return h


async def test_report_with_chinese_names_prints_as_escpos_and_renders(tmp_path, artifacts):
    report = build_report(finished_handover())
    title, lines = report_lines(report, PEOPLE, "zh-CN", "城东支行")
    text = "\n".join(lines)
    for expected in ("押运组长 欧阳志远 (E01)", "营业专员 周敏 (O01)", "车牌: 沪A·C1234", "款箱: 计划 2 / 清点 2",
                     "结果: 已完成（有异常）", "错箱 04AA09 XB-09 BR-002", "款箱隔离，继续交接 / 处置后继续交接", "错箱已退回押运车"):
        assert expected in text

    device = tmp_path / "lp0"
    printer = EscposPrinter("file", path=str(device))
    await printer.print_lines(title, lines)
    stream = device.read_bytes()
    assert stream.startswith(b"\x1b@"), "the printer is initialised first, so a previous job's mode cannot garble it"
    images = raster_images(stream)
    assert images and all(w == 384 for w, _, _ in images)
    printed = np.vstack([bits for _, _, bits in images])
    assert (printed == (np.array(printer.render(title, lines)) == 0)).all(), "paper shows exactly the drawn report"
    assert stream.endswith(b"\x1dV\x00")

    png = artifacts("reports/handover-report-zh.png")
    printer.render_png(title, lines, png)
    assert png.stat().st_size > 0
