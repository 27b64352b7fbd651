"""The BLE scanner through bleak's own BleakScanner front end.

This machine has no Bluetooth radio, so the one mocked boundary is the platform backend:
a small BaseBleakScanner subclass that delivers advertisements built from bleak's own types.
`AdvertRadio` + `advert_oracle` fuzz what a truck's neighbours can put on the air (tools/fuzz_long.py
runs them over >= 1,000,000 adverts).
"""
import asyncio
import re
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError

from drivers.ble.presence import APPLE_COMPANY_ID, EDDYSTONE_UUID, BeaconPattern
from drivers.ble.scanner import BleakBeaconScanner
from drivers.events import DeviceHealth, VehicleArrived, VehicleDeparted

TRUCK_UUID = uuid.UUID("fda50693-a4e2-4fb1-afcf-c6eb07647825")


class RadioBackend(BaseBleakScanner):
    """Stands in for BlueZ: `fail_starts` start attempts fail the way a missing adapter does."""
    fail_starts = 0
    running: list["RadioBackend"] = []

    def __init__(self, detection_callback, service_uuids, scanning_mode="active", **kwargs):
        super().__init__(detection_callback, service_uuids)

    async def start(self) -> None:
        if RadioBackend.fail_starts:
            RadioBackend.fail_starts -= 1
            raise BleakError("No Bluetooth adapters found.")
        RadioBackend.running.append(self)

    async def stop(self) -> None:
        RadioBackend.running.remove(self)

    def hear(self, address: str, adv: AdvertisementData) -> None:
        device = self.create_or_update_device(address, address, adv.local_name, None, adv)
        self.call_detection_callbacks(device, adv)


def adv(rssi, manufacturer_data=None, service_data=None, local_name=None):
    return AdvertisementData(local_name=local_name, manufacturer_data=manufacturer_data or {},
                             service_data=service_data or {}, service_uuids=list(service_data or {}),
                             tx_power=None, rssi=rssi, platform_data=())


def ibeacon(major, minor):
    return {0x004C: b"\x02\x15" + TRUCK_UUID.bytes + major.to_bytes(2, "big") + minor.to_bytes(2, "big") + b"\xc5"}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


async def started(clock, **kw):
    RadioBackend.running.clear()
    events = []
    scanner = BleakBeaconScanner(
        scanner_factory=lambda **k: BleakScanner(backend=RadioBackend, **k),
        clock=clock, retry_initial=0.01, retry_max=0.05, tick_seconds=0.01, **kw)
    await scanner.start(events.append)
    for _ in range(200):
        if RadioBackend.running:
            break
        await asyncio.sleep(0.01)
    return scanner, events


async def test_ibeacon_truck_arrives_after_dwell_and_departs_after_silence():
    clock = Clock()
    scanner, events = await started(clock, rssi_threshold=-75, dwell_seconds=3.0, silence_seconds=60.0)
    radio = RadioBackend.running[0]
    for step in range(5):                       # one advertisement a second, strong
        radio.hear("C0:FF:EE:00:00:01", adv(-58, ibeacon(3, 17)))
        clock.now += 1.0
    identity = f"ibeacon:{TRUCK_UUID}:3:17"
    assert [e for e in events if isinstance(e, VehicleArrived)] == [VehicleArrived(identity, -58)]
    assert scanner.health().state == "connected"

    clock.now += 61.0                           # truck drives away: silence
    await asyncio.sleep(0.05)
    assert [e for e in events if isinstance(e, VehicleDeparted)] == [VehicleDeparted(identity)]
    await scanner.stop()
    assert RadioBackend.running == []


async def test_eddystone_truck_arrives():
    clock = Clock()
    scanner, events = await started(clock, dwell_seconds=2.0)
    frame = b"\x00\xf0" + bytes.fromhex("8b0ca750e7a74e14bd99") + bytes.fromhex("000000000042")
    for _ in range(3):
        RadioBackend.running[0].hear("C0:FF:EE:00:00:02", adv(-62, service_data={EDDYSTONE_UUID: frame}))
        clock.now += 1.0
    await scanner.stop()
    assert [e for e in events if isinstance(e, VehicleArrived)] == [
        VehicleArrived("eddystone:8b0ca750e7a74e14bd99:000000000042", -62)]


async def test_weak_beacon_and_unrelated_devices_never_arrive():
    clock = Clock()
    scanner, events = await started(clock, rssi_threshold=-75, dwell_seconds=3.0)
    for _ in range(30):
        RadioBackend.running[0].hear("C0:FF:EE:00:00:03", adv(-88, ibeacon(9, 9)))
        RadioBackend.running[0].hear("11:22:33:44:55:66", adv(-40, {0x0006: b"\x01\x09"}, local_name="Phone"))
        clock.now += 1.0
    await scanner.stop()
    assert not [e for e in events if isinstance(e, (VehicleArrived, VehicleDeparted))]


async def test_adapter_missing_at_start_is_reported_then_recovered_without_restart():
    RadioBackend.fail_starts = 3
    clock = Clock()
    scanner, events = await started(clock, dwell_seconds=0.0)
    assert RadioBackend.running, "scanner never recovered after the adapter came back"
    health = [e for e in events if isinstance(e, DeviceHealth)]
    assert health[0].state == "missing" and "No Bluetooth adapters found" in health[0].last_error
    assert health[-1].state == "connected"
    assert scanner.health().state == "connected"
    RadioBackend.running[0].hear("C0:FF:EE:00:00:04", adv(-50, ibeacon(1, 1)))
    await scanner.stop()
    assert VehicleArrived(f"ibeacon:{TRUCK_UUID}:1:1", -50) in events


async def test_real_bleak_without_bluetooth_reports_missing_and_keeps_running():
    """On this machine BlueZ is absent: the real default backend must fail softly, not crash."""
    events = []
    scanner = BleakBeaconScanner(retry_initial=0.01, retry_max=0.02)
    await scanner.start(events.append)
    for _ in range(200):
        if scanner.health().last_error:
            break
        await asyncio.sleep(0.01)
    assert scanner.health().state == "missing"
    assert scanner.health().last_error
    await asyncio.sleep(0.05)                    # still retrying, task alive
    assert not scanner._task.done()
    await scanner.stop()


async def test_adapter_lost_while_scanning_is_noticed_by_silence_and_recovered():
    clock = Clock()
    scanner, events = await started(clock, dwell_seconds=0.0, silence_seconds=30.0)
    first = RadioBackend.running[0]
    first.hear("C0:FF:EE:00:00:05", adv(-50, ibeacon(2, 2)))
    RadioBackend.fail_starts = 2                # adapter unplugged: the restart will fail twice
    clock.now += 121.0                          # and the radio has gone quiet
    for _ in range(300):
        if RadioBackend.running and RadioBackend.running[0] is not first:
            break
        await asyncio.sleep(0.01)
    assert RadioBackend.running and RadioBackend.running[0] is not first, "scan was not restarted"
    states = [e.state for e in events if isinstance(e, DeviceHealth)]
    assert states[-2:] == ["missing", "connected"]
    assert VehicleDeparted(f"ibeacon:{TRUCK_UUID}:2:2") in events
    await scanner.stop()


# --- forged adverts: only the truck's own identity, exactly, counts as the truck ---------------------
TRUCK = ibeacon(100, 1)[APPLE_COMPANY_ID]
TRUCK_ID = f"ibeacon:{TRUCK_UUID}:100:1"
EDDY_NS, EDDY_INST = bytes.fromhex("8b0ca750e7a74e14bd99"), bytes.fromhex("000000000042")
EDDY_FRAME = b"\x00\xf0" + EDDY_NS + EDDY_INST
EDDY_ID = f"eddystone:{EDDY_NS.hex()}:{EDDY_INST.hex()}"
# a truck tag that is neither iBeacon nor Eddystone: named CIT-nnnn with company 0x0590 data starting 5A01
NAMED = BeaconPattern("TRK-NAMED", local_name=r"CIT-\d{4}", company_id=0x0590, data_prefix=b"\x5a\x01")
THRESHOLD = -75


def genuine_source(identity: str, adv: AdvertisementData) -> bool:
    """Whether this advert really carries `identity`, by the formats' definitions (not the driver's code)."""
    if identity == TRUCK_ID:
        return bytes(adv.manufacturer_data.get(APPLE_COMPANY_ID, b""))[:22] == TRUCK[:22] \
            and len(adv.manufacturer_data[APPLE_COMPANY_ID]) >= 23
    if identity == EDDY_ID:
        frames = [bytes(v) for k, v in adv.service_data.items() if k.lower() == EDDYSTONE_UUID]
        return any(f[:1] == b"\x00" and f[2:18] == EDDY_NS + EDDY_INST for f in frames)
    if identity == NAMED.identity:
        return adv.local_name is not None and re.fullmatch(r"CIT-\d{4}", adv.local_name) is not None \
            and bytes(adv.manufacturer_data.get(0x0590, b"")).startswith(b"\x5a\x01")
    return identity.startswith(("ibeacon:", "eddystone:"))      # another beacon: not a truck we know


class AdvertRadio:
    """The real BleakBeaconScanner behind bleak's BleakScanner (RadioBackend), driven synchronously,
    with no dwell so every strong advert is judged at once."""

    def __init__(self):
        RadioBackend.fail_starts = 0
        self.clock = Clock()
        self.loop = asyncio.new_event_loop()
        self.scanner, self.events = self.loop.run_until_complete(started(
            self.clock, rssi_threshold=THRESHOLD, dwell_seconds=0.0, silence_seconds=5.0, patterns=(NAMED,)))
        self.radio = RadioBackend.running[0]

    def hear(self, address: str, adv: AdvertisementData) -> list:
        self.events.clear()                 # a long run keeps no history
        self.radio.hear(address, adv)
        self.clock.now += 0.1
        return list(self.events)

    def forget(self) -> None:
        """The trucks drive away (silence), so the next arrival is judged afresh."""
        self.clock.now += 10.0
        self.scanner._tracker.tick(self.clock())       # what the scan task does every tick

    def close(self) -> None:
        self.loop.run_until_complete(self.scanner.stop())
        self.loop.close()


def advert_oracle(radio: AdvertRadio, adverts: list[tuple[str, AdvertisementData]]) -> tuple[int, int]:
    """Whatever the adverts hold, nothing raises, and an arrival names an identity the advert carries.
    Returns (arrivals, adverts that made none)."""
    arrivals = 0
    for address, adv in adverts:
        for event in radio.hear(address, adv):
            if isinstance(event, VehicleArrived):
                assert genuine_source(event.identity, adv), f"{event.identity} arrived from {adv}"
                assert adv.rssi >= THRESHOLD
                arrivals += 1
    radio.forget()
    return arrivals, len(adverts) - arrivals


def advert(local_name, manufacturer_data, service_data, rssi, tx_power=None) -> AdvertisementData:
    return AdvertisementData(local_name=local_name, manufacturer_data=manufacturer_data, service_data=service_data,
                             service_uuids=list(service_data), tx_power=tx_power, rssi=rssi, platform_data=())


def forged_truck(major: int, minor: int, cut: int, flip: int) -> bytes:
    data = bytearray(b"\x02\x15" + TRUCK_UUID.bytes + major.to_bytes(2, "big") + minor.to_bytes(2, "big") + b"\xc5")
    if flip < len(data):
        data[flip] ^= 0x01
    return bytes(data[:cut])


manufacturer = st.dictionaries(
    st.sampled_from([APPLE_COMPANY_ID, 0x0590, 0x0006]) | st.integers(0, 0xFFFF),
    st.one_of(st.binary(max_size=30), st.just(TRUCK),
              st.builds(forged_truck, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 30),
                        st.integers(0, 60)),
              st.just(b"\x5a\x01") | st.binary(max_size=4).map(lambda b: b"\x5a\x01" + b)), max_size=3)
service = st.dictionaries(
    st.sampled_from([EDDYSTONE_UUID, EDDYSTONE_UUID.upper(), "0000fe9a-0000-1000-8000-00805f9b34fb"]),
    st.one_of(st.binary(max_size=24), st.just(EDDY_FRAME),
              st.tuples(st.integers(0, 17), st.integers(0, 255)).map(
                  lambda f: EDDY_FRAME[:f[0]] + bytes([f[1]]) + EDDY_FRAME[f[0] + 1:])), max_size=2)
adverts = st.lists(st.tuples(
    st.sampled_from(["C0:FF:EE:00:00:01", "11:22:33:44:55:66"]),
    st.builds(advert, st.none() | st.sampled_from(["CIT-0042", "CIT-42", "cit-0042", "Phone"]) | st.text(max_size=12),
              manufacturer, service, st.integers(-127, 20), st.none() | st.integers(-127, 20))), max_size=6)
RADIO = None


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(adverts)
def test_no_forged_advert_counts_as_the_truck_and_none_breaks_the_scanner(heard):
    global RADIO
    RADIO = RADIO or AdvertRadio()
    advert_oracle(RADIO, heard)
    assert RADIO.scanner.health().state == "connected"


def test_right_uuid_with_another_major_or_minor_is_another_beacon_not_the_truck():
    radio = AdvertRadio()
    try:
        for major, minor in [(100, 2), (101, 1), (0, 1), (100, 0x0101)]:
            events = radio.hear("C0:FF:EE:00:00:01", advert(None, {APPLE_COMPANY_ID: forged_truck(major, minor, 23, 99)},
                                                             {}, -50))
            assert events == [VehicleArrived(f"ibeacon:{TRUCK_UUID}:{major}:{minor}", -50)]
        assert radio.hear("C0:FF:EE:00:00:01", advert(None, {APPLE_COMPANY_ID: TRUCK[:22]}, {}, -50)) == []
        assert radio.hear("C0:FF:EE:00:00:01", advert(None, {APPLE_COMPANY_ID: TRUCK}, {}, -50)) == [
            VehicleArrived(TRUCK_ID, -50)]
    finally:
        radio.close()
