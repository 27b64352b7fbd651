"""The dispatch file at head office (hq/schedule.py): every bad row named with its row, column and why, and
nothing stored when any row is bad; versions per site and day that move only where something changed; CSV
and XLSX read alike; fuzzed with hypothesis (whatever the bytes or cells, a clear refusal that changes
nothing, or tasks every terminal's schema accepts)."""
from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import date, datetime, time

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hq.db import Database
from hq.schedule import RowProblem, ScheduleRejected, import_schedule, import_sites, tasks_payload
from protocol import messages

HEADER = "date,route,stop,site,kind,window_start,window_end,plate,beacon,escorts,boxes,confirmers"
B1 = "ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:100:1"
B2 = "eddystone:0102030405060708090a:0b0c0d0e0f10"
GOOD = [
    ["2026-11-30", "R07", "1", "VLT-01", "delivery", "08:00", "08:30", "沪A·C1234", B1, "E01;E02", "", ""],
    ["2026-11-30", "R07", "2", "BR-001", "delivery", "09:00", "10:00", "沪A·C1234", B1, "E01;E02",
     "A1:04A1B2C3D4E5F6;A2:04A1B2C3D4E5F7", "O01"],
    ["2026-11-30", "R08", "1", "BR-002", "collection", "09:00", "09:40", "沪A·D5678", B2, "E03，E04",
     "H1:04000000000001", ""],
    ["2026-11-30", "R08", "2", "VLT-01", "collection", "11:00", "11:30", "沪A·D5678", B2, "E03，E04", "", ""],
]
SITES = "site_id,name,type\nVLT-01,中心金库,vault\nBR-001,城东支行,branch\nBR-002,城西支行,branch\n"
TABLES = ("schedule_tasks", "schedule_versions")


def csv_of(rows: list[list[str]], header: str = HEADER) -> bytes:
    """The CSV a spreadsheet saves: cells with commas, quotes or line breaks quoted."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # as Excel saves it; cells with CR or LF quoted
    writer.writerow(header.split(","))
    writer.writerows(rows)
    return out.getvalue().encode()


def xlsx_of(rows: list[list], header: str = HEADER) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header.split(","))
    for r in rows:
        sheet.append(r)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


@pytest.fixture
def db(tmp_path):
    d = Database(tmp_path / "hq.db").create_schema()
    import_sites(d, SITES.encode())
    yield d
    d.close()


def snapshot(db: Database) -> dict:
    return {t: db.run(lambda cur, t=t: sorted(cur.all(f"SELECT * FROM {t}"))) for t in TABLES}


def refused(db, data: bytes, name: str = "d.csv") -> list[RowProblem]:
    before = snapshot(db)
    with pytest.raises(ScheduleRejected) as exc:
        import_schedule(db, data, name)
    assert snapshot(db) == before, "a refused dispatch changes nothing"
    return exc.value.problems


def test_each_site_gets_its_runs(db):
    result = import_schedule(db, csv_of(GOOD), "dispatch.csv")
    assert result.changed == {"2026-11-30": {"BR-001": 1, "BR-002": 1, "VLT-01": 1}}
    version, payload = tasks_payload(db, "2026-11-30", "BR-001")
    messages.check("tasks", {"v": 1, "msg_id": "m", **payload})
    (task,) = payload["tasks"]
    assert task["task_id"] == "R07-20261130" and task["route"] == ["VLT-01", "BR-001"] and version == 1
    assert task["window_start"] == "2026-11-30T09:00:00+08:00" and task["confirmers"] == ["O01"]
    assert task["boxes"][0] == {"box_id": "A1", "tag": "04A1B2C3D4E5F6", "destination": "BR-001", "origin": "VLT-01"}
    assert payload["sites"]["BR-001"] == "城东支行"
    _, vault = tasks_payload(db, "2026-11-30", "VLT-01")
    assert {t["task_id"]: t["window_start"][11:16] for t in vault["tasks"]} == {"R07-20261130": "08:00",
                                                                                "R08-20261130": "11:00"}
    collection = next(t for t in vault["tasks"] if t["kind"] == "collection")
    assert collection["escorts"] == ["E03", "E04"], "full-width commas separate ids too"
    assert collection["boxes"] == [{"box_id": "H1", "tag": "04000000000001", "destination": "VLT-01",
                                    "origin": "BR-002"}]


def test_a_late_change_makes_a_new_version_only_where_it_matters(db):
    import_schedule(db, csv_of(GOOD), "dispatch.csv")
    again = import_schedule(db, csv_of(GOOD), "dispatch.csv")
    assert again.changed == {} and sorted(again.unchanged["2026-11-30"]) == ["BR-001", "BR-002", "VLT-01"]
    swapped = [list(r) for r in GOOD]
    for r in swapped[2:]:
        r[9] = "E03;E05"                                        # R08's second escort swapped
    result = import_schedule(db, csv_of(swapped), "dispatch.csv")
    assert result.changed == {"2026-11-30": {"BR-002": 2, "VLT-01": 2}}
    assert result.unchanged == {"2026-11-30": ["BR-001"]}
    _, vault = tasks_payload(db, "2026-11-30", "VLT-01")
    versions = {t["task_id"]: t["version"] for t in vault["tasks"]}
    assert versions == {"R07-20261130": 1, "R08-20261130": 2}, "a task's version moves only when it changed"


def test_every_bad_row_is_named_and_nothing_is_stored(db):
    import_schedule(db, csv_of(GOOD), "dispatch.csv")
    bad = [list(r) for r in GOOD]
    bad[0][3] = "BR-999"                                        # row 2: unknown site
    bad[1][6] = "08:59"                                         # row 3: window end before start
    bad[2][4] = "teleport"                                      # row 4: unknown kind
    bad[3][10] = "X9:04A1B2C3D4E5F6"                            # row 5: the tag of A1 (row 3) again
    bad.append(["2026-11-30", "R09", "1", "BR-001", "delivery", "12:00", "13:00", "P", "ibeacon:nope", "E01;E02",
                "Z1:XYZ", ""])                                  # row 6: beacon and tag malformed
    bad.append(["30/11/2026", "R10", "1", "BR-001", "delivery", "12:00", "13:00", "P", B1, "E01", "", ""])
    problems = refused(db, csv_of(bad))
    named = {(p.row, p.column) for p in problems}
    assert {(2, "site"), (3, "window_end"), (4, "kind"), (5, "boxes"), (6, "beacon"), (6, "boxes"), (7, "date"),
            (7, "escorts")} <= named, problems
    texts = {(p.row, p.column): p.why for p in problems}
    assert "BR-999" in texts[(2, "site")] and "04A1B2C3D4E5F6" in texts[(5, "boxes")] and "row 3" in texts[(5, "boxes")]
    assert "at least two" in texts[(7, "escorts")]


def test_escorts_are_checked_against_the_personnel_once_it_is_imported(db):
    db.run(lambda cur: cur.executemany("INSERT INTO hq_people (person_id, body, imported) VALUES (?, ?, ?)",
                                       [(p, json.dumps({"person_id": p}), "now") for p in ("E01", "E02", "O01")]))
    problems = refused(db, csv_of(GOOD))
    assert {(p.row, p.column) for p in problems} == {(4, "escorts"), (5, "escorts")}
    assert "E03" in problems[0].why and "E04" in problems[0].why


def test_a_route_whose_rows_disagree_is_refused(db):
    bad = [list(r) for r in GOOD]
    bad[1][7] = "沪A·X0000"
    bad[3][2] = "1"
    problems = refused(db, csv_of(bad))
    assert {(p.row, p.column) for p in problems} == {(3, "plate"), (5, "stop")}


def test_rows_are_numbered_as_the_spreadsheet_shows_them_even_with_a_line_break_in_a_cell(db):
    bad = [list(r) for r in GOOD]
    bad[1][7] = "沪A·C1234\n(备用)"           # a plate cell with a line break: still row 3 to the dispatcher
    bad[3][4] = "pickup"                         # row 5: an unknown kind
    problems = refused(db, csv_of(bad))
    assert (5, "kind") in {(p.row, p.column) for p in problems}
    assert all(p.row <= len(GOOD) + 1 for p in problems)


def test_header_and_file_problems_are_named(db):
    assert [str(p) for p in refused(db, b"date,route\n2026-11-30,R1\n")][0] == "row 1, stop: column missing from the header"
    assert "UTF-8" in str(refused(db, "日期".encode("gbk") + b"\n")[0])
    assert "neither .csv nor .xlsx" in str(refused(db, b"x", "d.pdf")[0])
    assert "XLSX" in str(refused(db, b"PK\x03\x04 not a zip", "d.xlsx")[0])
    assert "empty" in str(refused(db, b"\n\n", "d.csv")[0])


def test_xlsx_reads_as_the_csv_does_typed_cells_included(db, tmp_path):
    typed = [[date(2026, 11, 30), r[1], int(r[2]), *r[3:5], time.fromisoformat(r[5]), time.fromisoformat(r[6]),
              *r[7:]] for r in GOOD]
    typed[1][0] = datetime(2026, 11, 30)                        # a date cell Excel stored as midnight
    import_schedule(db, xlsx_of(typed), "dispatch.xlsx")
    other = Database(tmp_path / "other.db").create_schema()
    import_sites(other, SITES.encode())
    import_schedule(other, csv_of(GOOD), "dispatch.csv")
    for site in ("BR-001", "BR-002", "VLT-01"):
        assert tasks_payload(db, "2026-11-30", site) == tasks_payload(other, "2026-11-30", site)
    other.close()


# --- fuzz: whatever the cells or bytes, a named refusal that changes nothing, or tasks terminals accept ---

CELL = st.one_of(st.text(max_size=30), st.sampled_from(["", "E01;E01", "24:00", "9:5", "2026-02-30", "0",
                                                         "A:0", "ibeacon:" + "0" * 40, B1.upper(), "R07", "VLT-01"]))


def _check_outcome(db, data: bytes, name: str, nrows: int) -> None:
    before = snapshot(db)
    try:
        result = import_schedule(db, data, name)
    except ScheduleRejected as exc:
        assert exc.problems and snapshot(db) == before
        for p in exc.problems:
            assert 0 <= p.row <= nrows + 1 and p.column and p.why
        return
    for day, sites in result.changed.items():
        for site in sites:
            _, payload = tasks_payload(db, day, site)
            if payload["tasks"]:
                messages.check("tasks", {"v": 1, "msg_id": "m", **payload})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(0, len(GOOD) - 1), column=st.integers(0, 11), value=CELL, xlsx=st.booleans())
def test_fuzz_one_cell_changed(db, row, column, value, xlsx):
    rows = [list(r) for r in GOOD]
    rows[row][column] = value
    if xlsx:
        clean = [[c.replace("\x00", "") if isinstance(c, str) else c for c in r] for r in rows]
        try:
            data = xlsx_of(clean)
        except (ValueError, openpyxl.utils.exceptions.IllegalCharacterError):
            return                              # a cell openpyxl itself cannot write: no such file exists
        _check_outcome(db, data, "d.xlsx", len(rows))
    else:
        _check_outcome(db, csv_of(rows), "d.csv", len(rows))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400) | st.text(max_size=400).map(lambda s: (HEADER + "\n" + s).encode()),
       name=st.sampled_from(["d.csv", "d.xlsx"]))
def test_fuzz_arbitrary_bytes(db, data, name):
    _check_outcome(db, data, name, data.count(b"\n") + data.count(b"\r") + 1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.booleans(),
                                st.dates(), st.times(), st.datetimes(), st.text(max_size=20)), min_size=12, max_size=12))
def test_fuzz_typed_xlsx_cells(db, cells):
    cells = [c.replace("\x00", "") if isinstance(c, str) else c for c in cells]
    try:
        data = xlsx_of([cells])
    except (ValueError, TypeError, openpyxl.utils.exceptions.IllegalCharacterError):
        return
    _check_outcome(db, data, "d.xlsx", 1)


SHEET = "xl/worksheets/sheet1.xml"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at=st.integers(0, 10_000), cut=st.integers(0, 40), insert=st.binary(max_size=40))
def test_fuzz_damaged_sheet_xml(db, at, cut, insert):
    """A workbook whose sheet XML is damaged (a valid zip around it): refused by name, nothing stored."""
    good = xlsx_of(GOOD)
    with zipfile.ZipFile(io.BytesIO(good)) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    xml = parts[SHEET]
    i = at % len(xml)
    parts[SHEET] = xml[:i] + insert + xml[i + cut:]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, b in parts.items():
            z.writestr(n, b)
    _check_outcome(db, buf.getvalue(), "d.xlsx", len(GOOD))
