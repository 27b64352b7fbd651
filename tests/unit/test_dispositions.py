"""Which dispositions fit which alarm (flows/dispositions.py), and that a disposition that fits none of the
open alarms is refused by the handover machine and by the staff machine — not only hidden on the screen."""
from __future__ import annotations

import pytest

from flows import staff as fs
from flows.decisions import AlarmKind, Refused, RiskResolved
from flows.dispositions import DISPOSITIONS_FOR, fitting
from flows.events import DISPOSITION_CODES, VehicleArrived
from flows_fixtures import BR2, T0, TRUCK, Run, box, dispose, of, tag

# duress is silent and never opens risk handling; every other kind may be open when an officer disposes
DISPOSED = [k for k in AlarmKind if k is not AlarmKind.DURESS]


@pytest.mark.parametrize("kind", DISPOSED, ids=lambda k: k.value)
def test_every_alarm_kind_has_fitting_dispositions(kind):
    codes = DISPOSITIONS_FOR[kind]
    assert set(codes) <= set(DISPOSITION_CODES)
    assert {"other", "head_office_instructed"} <= set(codes)
    assert fitting([kind.value]) == tuple(c for c in DISPOSITION_CODES if c in codes)


def test_duress_is_not_in_the_table():
    assert AlarmKind.DURESS not in DISPOSITIONS_FOR


def test_a_route_skip_is_never_settled_by_setting_a_box_aside():
    assert "box_set_aside" not in fitting(["route_skip"])
    assert "box_set_aside" in fitting(["route_skip", "wrong_box"])     # fits one of the open alarms


def _route_skip() -> Run:
    r = Run.of()
    r.feed(VehicleArrived(beacon=TRUCK.beacon, stops_done=frozenset()))
    assert [a.kind for a in r.h.open_alarms] == [AlarmKind.ROUTE_SKIP]
    return r


def test_the_handover_refuses_a_disposition_that_fits_no_open_alarm():
    r = _route_skip()
    ds = r.feed(dispose(code="box_set_aside"))
    assert [(d.event, d.reason) for d in of(ds, Refused)] == [("DispositionRecorded", "disposition_does_not_fit")]
    assert r.h.in_risk_handling and r.h.dispositions == [] and not of(ds, RiskResolved)
    ds = r.feed(dispose(code="head_office_instructed"))
    assert of(ds, RiskResolved) and not r.h.in_risk_handling


def test_a_wrong_box_is_not_settled_by_confirming_an_identity():
    r = Run.of()
    r.to_boxes()
    r.feed(tag(box("B3", BR2)))
    assert [d.reason for d in of(r.feed(dispose(code="identity_confirmed")), Refused)] == ["disposition_does_not_fit"]
    assert of(r.feed(dispose(code="box_set_aside")), RiskResolved)


def test_the_staff_machine_refuses_before_asking_an_officer():
    s = fs.Staff()
    ctx = fs.Context("T1", risk_handling=True, open_alarms=frozenset({"route_skip"}))
    ds = s.handle(fs.Request(fs.Purpose.DISPOSITION, {"code": "box_set_aside", "text": "", "resolution": "continue"},
                             ctx), T0)
    assert [d.reason for d in of(ds, fs.Refused)] == ["disposition_does_not_fit"] and s.pending is None
