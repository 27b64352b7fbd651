"""Who a BLE advertisement belongs to, and when a truck counts as arrived or gone."""
import uuid

import pytest

from drivers.ble.presence import (
    EDDYSTONE_UUID, BeaconPattern, DwellTracker, extract_identity,
)
from drivers.events import VehicleArrived, VehicleDeparted

TRUCK_UUID = uuid.UUID("e2c56db5-dffb-48d2-b060-d0f5a71096e0")


def ibeacon(major: int, minor: int, u: uuid.UUID = TRUCK_UUID) -> bytes:
    return b"\x02\x15" + u.bytes + major.to_bytes(2, "big") + minor.to_bytes(2, "big") + b"\xc5"


def ident(local_name=None, manufacturer_data=None, service_data=None, patterns=()):
    return extract_identity(local_name=local_name, manufacturer_data=manufacturer_data or {},
                            service_data=service_data or {}, patterns=patterns)


def test_ibeacon_identity_carries_uuid_major_minor():
    assert ident(manufacturer_data={0x004C: ibeacon(258, 772)}) == f"ibeacon:{TRUCK_UUID}:258:772"


def test_apple_data_that_is_not_an_ibeacon_is_ignored():
    assert ident(manufacturer_data={0x004C: b"\x10\x05\x01\x18\x00\x00\x00"}) is None
    assert ident(manufacturer_data={0x004C: ibeacon(1, 2)[:20]}) is None        # truncated


def test_eddystone_uid_identity():
    frame = b"\x00\xee" + bytes(range(10)) + bytes.fromhex("a1b2c3d4e5f6") + b"\x00\x00"
    assert ident(service_data={EDDYSTONE_UUID: frame}) == "eddystone:00010203040506070809:a1b2c3d4e5f6"


def test_eddystone_url_frame_is_not_an_identity():
    assert ident(service_data={EDDYSTONE_UUID: b"\x10\xee\x03example"}) is None


def test_configured_pattern_by_name_and_manufacturer_data():
    truck = BeaconPattern("truck:沪A12345", local_name=r"CIT-\d{4}", company_id=0x059, data_prefix=b"\xca\xfe")
    assert ident("CIT-0042", {0x0059: b"\xca\xfe\x01"}, patterns=(truck,)) == "truck:沪A12345"
    assert ident("CIT-0042", {0x0059: b"\x00\xfe\x01"}, patterns=(truck,)) is None
    assert ident("CIT-42", {0x0059: b"\xca\xfe\x01"}, patterns=(truck,)) is None
    assert ident("Someone's phone", {}, patterns=(truck,)) is None


def test_pattern_without_criteria_is_refused_with_its_name():
    with pytest.raises(ValueError, match="truck-7"):
        BeaconPattern("truck-7")
    with pytest.raises(ValueError, match="company_id"):
        BeaconPattern("truck-7", local_name="x", data_prefix=b"\x01")


def test_arrival_only_after_dwell_and_only_once():
    t = DwellTracker(rssi_threshold=-75, dwell_seconds=3.0, silence_seconds=60.0)
    assert t.sighting("truck", -60, 0.0) == []
    assert t.sighting("truck", -60, 2.9) == []
    assert t.sighting("truck", -60, 3.0) == [VehicleArrived("truck", -60)]
    assert t.sighting("truck", -60, 4.0) == []
    assert t.present() == ["truck"]


def test_weak_signal_never_arrives():
    t = DwellTracker(rssi_threshold=-75, dwell_seconds=3.0)
    assert all(t.sighting("far-truck", -85, s) == [] for s in range(0, 120))
    assert t.present() == []


def test_one_strong_packet_among_weak_ones_does_not_arrive():
    t = DwellTracker(rssi_threshold=-75, dwell_seconds=3.0)
    events = []
    for s in range(30):
        events += t.sighting("truck", -50 if s % 10 == 0 else -90, float(s))
    assert events == []


def test_dip_below_threshold_restarts_dwell():
    t = DwellTracker(rssi_threshold=-75, dwell_seconds=3.0, smoothing=1.0)
    t.sighting("truck", -60, 0.0)
    t.sighting("truck", -60, 2.0)
    t.sighting("truck", -90, 2.5)
    assert t.sighting("truck", -60, 4.0) == []          # dwell restarted at 4.0
    assert t.sighting("truck", -60, 7.0) == [VehicleArrived("truck", -60)]


def test_departure_after_silence_once_and_only_for_arrived_trucks():
    t = DwellTracker(rssi_threshold=-75, dwell_seconds=0.0, silence_seconds=60.0)
    t.sighting("truck", -60, 0.0)
    t.sighting("passer-by", -90, 0.0)
    assert t.tick(59.0) == []
    assert t.tick(60.0) == [VehicleDeparted("truck")]
    assert t.tick(200.0) == []
    assert t.sighting("truck", -60, 201.0) == [VehicleArrived("truck", -60)]   # a new visit


def test_bad_tracker_settings_are_refused():
    with pytest.raises(ValueError, match="smoothing"):
        DwellTracker(smoothing=0)
    with pytest.raises(ValueError, match="silence_seconds"):
        DwellTracker(silence_seconds=0)
