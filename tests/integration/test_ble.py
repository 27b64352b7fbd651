"""The BLE scanner through bleak's own BleakScanner front end.

This machine has no Bluetooth radio, so the one mocked boundary is the platform backend:
a small BaseBleakScanner subclass that delivers advertisements built from bleak's own types.
"""
import asyncio
import uuid

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError

from drivers.ble.presence import EDDYSTONE_UUID
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
