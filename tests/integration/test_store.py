"""The device store on a real SQLite file: sealed personal data and box keys, persisted tag counters,
slot allocation, and that a newer task version wins."""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from agent.journal import Journal
from agent.sealing import SealError, Sealer
from agent.store import Store, Template
from flows.model import Box, Person, Role, Task, TaskKind, Vehicle


@pytest.fixture
def store(tmp_path):
    j = Journal(tmp_path / "journal.db")
    yield Store(j.db, Sealer(tmp_path / "keys" / "data.key"), tmp_path / "photos"), j, tmp_path
    j.close()


def raw_bytes(tmp_path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("journal.db*"))


def test_personal_data_and_box_keys_are_sealed_at_rest(store):
    s, j, tmp = store
    meta, file = os.urandom(16), os.urandom(16)
    with j.transaction():
        s.upsert_person(Person("E9", "欧阳志远", Role.ESCORT, company="押运一队"))
        s.put_template(Template("E9", "right_index", b"\xAB" * 512))
        s.put_box_keys("04a1b2c3d4e5f6", meta, file)
    photo = s.put_photo(b"JPEG-of-a-face")
    assert s.person("E9").name == "欧阳志远" and s.box_keys("04A1B2C3D4E5F6") == (meta, file)
    assert s.photo(photo) == b"JPEG-of-a-face"
    disk = raw_bytes(tmp) + b"".join(p.read_bytes() for p in (tmp / "photos").iterdir())
    for secret in ("欧阳志远".encode(), "押运一队".encode(), b"\xAB" * 64, meta, file, b"JPEG-of-a-face"):
        assert secret not in disk
    assert oct((tmp / "keys" / "data.key").stat().st_mode & 0o777) == "0o600"


def test_a_photo_a_power_cut_left_torn_is_written_again_whole(store):
    """Photos are written in place (no rename): a file cut short or empty under a photo's name is no
    photo. The next write of that photo replaces it; a whole one is kept as it is."""
    s, _, tmp = store
    whole, torn, empty = b"JPEG-kept" * 100, b"JPEG-torn" * 100, b"JPEG-empty" * 100
    digest, wrote = s.write_photo(whole)
    before = (tmp / "photos" / f"{digest}.sealed").read_bytes()
    assert wrote and s.write_photo(whole) == (digest, False)
    assert (tmp / "photos" / f"{digest}.sealed").read_bytes() == before          # not sealed again
    for photo, cut in ((torn, 100), (empty, 0)):
        name = tmp / "photos" / f"{hashlib.sha256(photo).hexdigest()}.sealed"
        name.write_bytes(Sealer(tmp / "keys" / "data.key").seal(photo, name.stem.encode())[:cut])
        with pytest.raises(SealError):
            s.photo(name.stem)
        assert s.write_photo(photo) == (name.stem, True) and s.photo(name.stem) == photo
    assert sorted(p.suffix for p in (tmp / "photos").iterdir()) == [".sealed"] * 3   # no temporary file left


def test_one_photo_written_by_many_threads_at_once_ends_whole(store):
    """Two people of one import may share a photo, and an import writes photos in threads: a thread that
    finds the file half written by another replaces it with a whole copy, never a mix of the two."""
    s, _, tmp = store
    for n in range(20):
        photo = os.urandom(64 * 1024)
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda _: s.write_photo(photo, sync_name=False), range(8)))
        digest = hashlib.sha256(photo).hexdigest()
        assert {d for d, _ in results} == {digest} and any(wrote for _, wrote in results)
        assert s.photo(digest) == photo
    assert not list((tmp / "photos").glob("*.tmp"))


def test_random_uid_tags_get_each_distinct_meta_read_key_to_try(store):
    s, j, _ = store
    shared, other = os.urandom(16), os.urandom(16)
    with j.transaction():
        s.put_box_keys("04000000000001", shared, os.urandom(16))   # a batch personalised with one K_SDMMetaRead
        s.put_box_keys("04000000000002", shared, os.urandom(16))
        s.put_box_keys("04000000000003", other, os.urandom(16))
    assert sorted(s.box_meta_read_keys()) == sorted([shared, other])


def test_another_devices_key_cannot_open_the_data(store, tmp_path):
    s, j, tmp = store
    with j.transaction():
        s.upsert_person(Person("E9", "欧阳志远", Role.ESCORT))
    other = Store(j.db, Sealer(tmp_path / "other.key"), tmp_path / "photos")
    with pytest.raises(SealError):
        other.person("E9")


def test_tag_counters_survive_a_restart(store, tmp_path):
    s, j, _ = store
    counters = s.tag_counters(j)
    counters["04AA"] = 61
    j.close()
    j2 = Journal(tmp_path / "journal.db")
    again = Store(j2.db, Sealer(tmp_path / "keys" / "data.key"), tmp_path / "photos").tag_counters(j2)
    assert again["04AA"] == 61 and len(again) == 1 and "04BB" not in again
    j2.close()


def test_slots_fill_holes_and_newer_task_versions_win(store):
    s, j, _ = store
    with j.transaction():
        slots = [s.put_template(Template(f"P{i}", "right_index", bytes([i]) * 512)) for i in range(4)]
        assert slots == [0, 1, 2, 3]
        assert s.remove_person("P1") == [1]
        assert s.put_template(Template("P9", "right_index", b"\x09" * 512)) == 1
        assert s.put_template(Template("P8", "right_index", b"\x08" * 512)) == 4
    t0 = datetime(2026, 11, 22, 9, tzinfo=timezone.utc)
    task = Task("T1", 2, TaskKind.DELIVERY, t0, t0 + timedelta(hours=1), ("B1",), Vehicle("V", "沪A", "b"),
                ("E1", "E2"), (Box("X1", "04AA", "B1"),), ("O1",))
    assert s.upsert_task(task) is True
    assert s.upsert_task(Task(**{**task.__dict__, "version": 1})) is False          # older: refused
    assert s.upsert_task(task) is False                                             # same: unchanged
    assert s.task("T1").version == 2


def test_a_night_run_belongs_to_both_days_it_touches(store):
    s, j, _ = store
    from zoneinfo import ZoneInfo
    t0 = datetime(2026, 11, 22, 23, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    night = Task("N1", 1, TaskKind.DELIVERY, t0, t0 + timedelta(hours=1), ("B1",), Vehicle("V", "沪A", "b"),
                 ("E1", "E2"), (), ("O1",))
    with j.transaction():
        s.upsert_task(night)
    assert [t.task_id for t in s.tasks_on(t0.date(), "B1")] == ["N1"]
    assert [t.task_id for t in s.tasks_on(t0.date() + timedelta(days=1), "B1")] == ["N1"], \
        "a truck arriving at 00:10 must still find its task"
    assert s.tasks_on(t0.date() + timedelta(days=2)) == [] and s.tasks_on(t0.date() - timedelta(days=1)) == []


def test_lookups_by_site_beacon_and_tag_follow_the_newest_version(store):
    s, j, _ = store
    t0 = datetime(2026, 11, 22, 9, tzinfo=timezone.utc)

    def task(version, route, boxes, beacon="b1"):
        return Task("T1", version, TaskKind.DELIVERY, t0, t0 + timedelta(hours=1), route, Vehicle("V", "沪A", beacon),
                    ("E1", "E2"), boxes, ("O1",))
    with j.transaction():
        s.upsert_task(task(1, ("B1", "B2"), (Box("X1", "04AA", "B1"),)))
        s.upsert_task(Task("T2", 1, TaskKind.DELIVERY, t0, t0 + timedelta(hours=1), ("B3",), Vehicle("W", "沪B", "b2"),
                           ("E1", "E2"), (Box("Z1", "04ZZ", "B3"),), ("O1",)))
    day = t0.date()
    assert [t.task_id for t in s.tasks_on(day, "B2")] == ["T1"] and s.tasks_on(day, "B9") == []
    assert [t.task_id for t in s.tasks_on(day, beacon="b2")] == ["T2"]
    assert s.box_for_tag("04aa", day) == Box("X1", "04AA", "B1")
    assert s.box_for_tag("04AA", day + timedelta(days=2)) is None, "yesterday's tasks do not claim today's tags"
    with j.transaction():                           # head office re-plans: another route, another box
        s.upsert_task(task(2, ("B1", "B4"), (Box("X2", "04BB", "B4"),), beacon="b9"))
    assert s.tasks_on(day, "B2") == [] and [t.task_id for t in s.tasks_on(day, "B4")] == ["T1"]
    assert s.box_for_tag("04AA", day) is None and s.box_for_tag("04BB", day).box_id == "X2"
    assert s.tasks_on(day, beacon="b1") == [] and [t.version for t in s.tasks_on(day, beacon="b9")] == [2]


def test_a_batch_of_tasks_is_stored_as_one_at_a_time_would_be(store):
    """upsert_tasks (a day's schedule in a few statements): within one batch and against what is stored,
    the newest version wins with its own stops and boxes; older and equal versions are left out."""
    s, j, _ = store
    t0 = datetime(2026, 11, 22, 9, tzinfo=timezone.utc)

    def task(task_id, version, route, tag):
        return Task(task_id, version, TaskKind.DELIVERY, t0, t0 + timedelta(hours=1), route,
                    Vehicle("V", "沪A", f"b-{task_id}"), ("E1", "E2"), (Box(f"X-{tag}", tag, route[-1]),), ("O1",))
    with j.transaction():
        s.upsert_task(task("T0", 3, ("B1",), "0400"))
    batch = [task("T1", 1, ("B1",), "04A1"), task("T1", 2, ("B2",), "04A2"),   # re-planned within the batch
             task("T1", 2, ("B3",), "04A3"),                                     # same version again: ignored
             task("T0", 2, ("B9",), "0409"),                                     # older than stored: refused
             task("T0", 4, ("B4",), "0404"), task("T2", 1, ("B1",), "04B1")]
    with j.transaction():
        stored = s.upsert_tasks(batch)
    assert [(t.task_id, t.version) for t in stored] == [("T1", 1), ("T1", 2), ("T0", 4), ("T2", 1)]
    day = t0.date()
    assert sorted(t.task_id for t in s.tasks_on(day, "B1")) == ["T2"]     # T1 v1 and T0 v3 stops are gone
    assert [t.task_id for t in s.tasks_on(day, "B2")] == ["T1"] and s.tasks_on(day, "B3") == []
    assert [t.task_id for t in s.tasks_on(day, "B4")] == ["T0"] and s.tasks_on(day, "B9") == []
    assert s.box_for_tag("04A1", day) is None and s.box_for_tag("0400", day) is None
    assert s.box_for_tag("04A2", day).box_id == "X-04A2" and s.box_for_tag("0404", day).box_id == "X-0404"
    assert s.task_count() == 3 and s.upsert_tasks(batch) == []


def test_a_store_from_before_keeps_one_index_for_arrivals(tmp_path):
    """A device's file from before has an index on day and one on beacon; opened now it has the one on
    (beacon, day) the arrival lookup uses, and finds the truck's task of the day through it."""
    j = Journal(tmp_path / "journal.db")
    j.db.execute("CREATE TABLE tasks (task_id TEXT PRIMARY KEY, version INTEGER NOT NULL, day TEXT NOT NULL,"
                 " beacon TEXT NOT NULL, body TEXT NOT NULL)")
    j.db.execute("CREATE INDEX tasks_day ON tasks(day)")
    j.db.execute("CREATE INDEX tasks_beacon ON tasks(beacon)")
    s = Store(j.db, Sealer(tmp_path / "data.key"), tmp_path / "photos")
    t0 = datetime(2026, 11, 22, 9, tzinfo=timezone.utc)
    with j.transaction():
        s.upsert_task(Task("T1", 1, TaskKind.DELIVERY, t0, t0 + timedelta(hours=1), ("B1",), Vehicle("V", "沪A", "b1"),
                           ("E1", "E2"), (), ("O1",)))
    indexes = {r[0] for r in j.db.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='tasks'"
                                          " AND sql IS NOT NULL")}
    plan = " ".join(r[3] for r in j.db.execute("EXPLAIN QUERY PLAN SELECT body FROM tasks WHERE day BETWEEN ? AND ?"
                                                " AND beacon=?", ("2026-11-21", "2026-11-22", "b1")))
    assert indexes == {"tasks_beacon_day"} and "tasks_beacon_day" in plan
    assert [t.task_id for t in s.tasks_on(t0.date(), beacon="b1")] == ["T1"]
    j.close()


def test_a_batch_of_templates_gets_the_slots_one_at_a_time_would(store, tmp_path):
    """put_templates (a personnel import in one statement) against put_template one by one on a second
    store: the same slots (holes first, a re-enrolled finger keeps its slot, a finger given twice in the
    batch takes one slot and the later template) and the same templates stored."""
    s, j, _ = store
    j2 = Journal(tmp_path / "other.db")
    one = Store(j2.db, Sealer(tmp_path / "keys" / "data.key"), tmp_path / "photos")
    before = [Template(f"P{i}", "right_index", bytes([i]) * 512) for i in range(5)]
    batch = [Template("P9", "right_index", b"\x09" * 512), Template("P2", "right_index", b"\x22" * 512),
             Template("P8", "left_index", b"\x08" * 512, duress=True), Template("P7", "right_index", b"\x07" * 512),
             Template("P9", "right_index", b"\x99" * 512), Template("P6", "right_index", b"\x06" * 512)]
    for st, jr in ((s, j), (one, j2)):
        with jr.transaction():
            st.put_templates(before)
            st.remove_person("P1")
            st.remove_person("P3")
    with j.transaction():
        slots = s.put_templates(batch)
    with j2.transaction():
        assert slots == [one.put_template(t) for t in batch] == [1, 2, 3, 5, 1, 6]
    assert s.slots() == one.slots() and s.templates() == one.templates()
    assert dict(s.templates())[1].template == b"\x99" * 512 and s.slot_owner(3).duress is True
    j2.close()


def test_a_person_is_stored_with_every_field(store):
    s, j, _ = store
    p = Person("E9", "欧阳志远", Role.OFFICER, company="押运一队", valid_from=datetime(2026, 1, 1).date(),
               valid_until=datetime(2026, 12, 31).date(), photo="ab" * 32)
    with j.transaction():
        s.upsert_people([p, Person("E8", "李四", Role.ESCORT)])
    assert s.person("E9") == p and s.person("E8") == Person("E8", "李四", Role.ESCORT)
