"""Task.from_dict takes the usual shape in one quick pass (Task._plain, for a day's 10,000 tasks) and
everything else through the field-by-field check (Task._checked). Whatever the input, both give the same
task or the same error naming the same field: the quick pass never accepts what the check refuses.
Task.row_from_dict (an import: no Task built, the sender's dict stored as the body) is held to the same:
its row is the checked task's, and its body reads back to that task."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.model import Box, Task, TaskKind, Vehicle, TaskRow

MISSING = object()
PLAIN = {"task_id": "T1", "version": 1, "kind": "delivery", "window_start": "2026-11-22T09:00:00+08:00",
         "window_end": "2026-11-22T11:00:00+08:00", "route": ["vault-01", "B1"],
         "vehicle": {"vehicle_id": "V1", "plate": "粤A1", "beacon": "AA:BB"}, "escorts": ["E1", "E2"],
         "boxes": [{"box_id": "X1", "tag": "04aa", "destination": "B1"}], "confirmers": ["O1"]}
PLAIN_BOX = PLAIN["boxes"][0]

odd = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**54), st.floats(allow_nan=False), st.text(max_size=3),
                st.lists(st.integers(0, 3), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
                st.just(MISSING))
texts = st.one_of(st.lists(st.sampled_from(["E1", "E2", "E3", "B1"]), max_size=4),
                  st.lists(st.one_of(st.sampled_from(["E1", "E2"]), st.integers(0, 9), st.booleans(), st.none()),
                           max_size=3),
                  st.tuples(st.just("E1"), st.just("E2")))
moments = st.sampled_from(["2026-11-22T09:00:00+08:00", "2026-11-22T11:00:00+08:00", "2026-11-22T10:00:00",
                           "2026-11-22T09:00:00Z", "2026-11-22", "22/11/2026 09:00", "2026-11-21T23:30:00+00:00",
                           "2026-11-22T11:00:00+09:00"])


def changed(plain: dict, options: dict):
    """`plain` with one to three of its fields given another value (or left out)."""
    keys = sorted(options)
    return st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True).flatmap(
        lambda chosen: st.tuples(*(st.one_of(options[k], odd) for k in chosen)).map(
            lambda values: {k: v for k, v in {**plain, **dict(zip(chosen, values))}.items() if v is not MISSING}))


boxes = changed(PLAIN_BOX, {"box_id": st.integers(0, 9), "tag": st.just("04BB"), "destination": st.just("B2"),
                            "origin": st.one_of(st.just("B2"), st.none(), st.integers(0, 9))})
vehicles = changed(PLAIN["vehicle"], {"vehicle_id": st.integers(0, 9), "plate": st.just("粤B2"), "beacon": st.just("CC")})
box_lists = st.one_of(st.lists(st.one_of(boxes, st.just(PLAIN_BOX), odd), max_size=3), st.tuples(st.just(PLAIN_BOX)))
tasks = st.one_of(st.just(PLAIN), box_lists.map(lambda b: {**PLAIN, "boxes": b}),
                  vehicles.map(lambda v: {**PLAIN, "vehicle": v}), changed(PLAIN, {
    "task_id": st.integers(0, 99), "version": st.sampled_from([-1, 0, 2, 2**53, 2**53 + 1, True]),
    "kind": st.one_of(st.sampled_from([k.value for k in TaskKind] + ["Delivery"]), st.just(TaskKind.COLLECTION)),
    "window_start": moments, "window_end": moments, "route": st.one_of(texts, st.just([])), "vehicle": vehicles,
    "escorts": texts, "min_escorts": st.integers(0, 5),
    "boxes": box_lists,
    "confirmers": texts}))


def outcome(parse, d) -> str:
    """repr, not ==: a version True would equal 1, an origin 5 would not show it is not text."""
    try:
        return repr(parse(d))
    except ValueError as e:
        return f"ValueError: {e}"


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(tasks)
def test_the_quick_pass_gives_what_the_full_check_gives(d):
    assert outcome(Task.from_dict, d) == outcome(Task._checked, d)


def test_the_usual_shape_takes_the_quick_pass():
    d = {"task_id": "T1", "version": 3, "kind": "collection", "window_start": "2026-11-22T09:00:00+08:00",
         "window_end": "2026-11-22T11:00:00+08:00", "route": ["B1", "vault-01"],
         "vehicle": {"vehicle_id": "V1", "plate": "粤A1", "beacon": "AA:BB"}, "escorts": ["E1", "E2", "E3"],
         "boxes": [{"box_id": "X1", "tag": "04aa", "destination": "vault-01", "origin": "B1"}],
         "confirmers": ["O1"], "min_escorts": 3}
    task = Task._plain(d)
    assert task == Task._checked(d) and task.kind is TaskKind.COLLECTION
    assert task.boxes == (Box("X1", "04AA", "vault-01", "B1"),) and task.vehicle == Vehicle("V1", "粤A1", "AA:BB")
    assert Task._plain({**d, "escorts": ["E1", 2, "E3"]}) is None          # the full check takes the number
    assert Task.from_dict({**d, "escorts": ["E1", 2, "E3"]}).escorts == ("E1", "2", "E3")


extra = st.dictionaries(st.sampled_from(["note", "box_keys", "seal", "tag"]), odd.filter(lambda v: v is not MISSING),
                        min_size=1, max_size=2)
with_extras = st.one_of(
    st.tuples(tasks, extra).map(lambda te: {**te[0], **te[1]}),
    st.tuples(vehicles, extra).map(lambda ve: {**PLAIN, "vehicle": {**ve[0], **ve[1]}}),
    st.tuples(boxes, extra).map(lambda be: {**PLAIN, "boxes": [PLAIN_BOX, {**be[0], **be[1]}]}))
TASK_FIELDS = {f for f in Task.__dataclass_fields__}


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(tasks, with_extras), st.booleans())
def test_an_imported_row_is_what_the_full_check_gives(d, with_text):
    """The row's columns, stops and boxes are the checked task's; its body, as the store keeps it (JSON,
    or the JSON text the task came in), reads back to the checked task and holds nothing a task has no
    field for (box keys are sealed apart)."""
    try:
        text = json.dumps(d, ensure_ascii=False, indent=1) if with_text else None
    except (TypeError, ValueError):       # not JSON at all (an enum member is): no text to keep
        text = None
    try:
        row = Task.row_from_dict(d, text)
    except ValueError as e:
        assert f"ValueError: {e}" == outcome(Task._checked, d)
        return
    task = Task._checked(d)
    assert isinstance(row, TaskRow) and row[:6] == task.to_row()[:6]
    body = json.loads(row.body if isinstance(row.body, str) else json.dumps(row.body, ensure_ascii=False))
    assert repr(Task.from_dict(body)) == repr(task) and set(body) <= TASK_FIELDS
    assert all(set(b) <= {"box_id", "tag", "destination", "origin"} for b in body.get("boxes", []))
    assert set(body["vehicle"]) == {"vehicle_id", "plate", "beacon"}


def test_the_usual_shape_is_stored_as_sent():
    d = {**PLAIN, "box_keys": {"04AA": {"meta": "00" * 16, "file": "11" * 16}}}
    row = Task.row_from_dict(d)
    assert row.body == PLAIN and row.boxes == [("04AA", "T1", "X1", "B1", None)] and row.day == "2026-11-22"
    assert Task.row_from_dict(PLAIN).body is PLAIN                          # nothing copied
    assert Task.row_from_dict(PLAIN, '{"as": "sent"}').body == '{"as": "sent"}'   # nor written again
    assert Task.row_from_dict(d, json.dumps(d)).body == PLAIN               # box keys: never the text
    odd_box = {**PLAIN, "boxes": [{**PLAIN_BOX, "note": "x"}]}               # a field no box has: checked form
    assert Task.row_from_dict(odd_box).body == Task.from_dict(odd_box).to_dict()
