"""Builds the device set the configuration names: real drivers, or their simulators (SPEC §7)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from agent.config import Config
from drivers.base import Camera, DoorOutput, FingerprintModule, InputDevice, Printer, Voice


@dataclass
class Devices:
    fingerprints: dict[str, FingerprintModule]          # by station: "door", "counter"
    cards: InputDevice
    ble: InputDevice
    camera: Camera
    voice: Voice
    printer: Printer
    door: DoorOutput
    extra_inputs: list[InputDevice] = field(default_factory=list)

    def inputs(self) -> list[InputDevice]:
        return [*self.fingerprints.values(), self.cards, self.ble, *self.extra_inputs]

    def all(self) -> list:
        return [*self.inputs(), self.camera, self.voice, self.printer, self.door]


def build_devices(config: Config) -> Devices:
    d = config.devices
    stations = {"door": d.fingerprint_door}
    if d.fingerprint_counter is not None:
        stations["counter"] = d.fingerprint_counter
    elif config.simulate:
        from agent.config import FingerprintConfig
        stations["counter"] = FingerprintConfig("counter")   # the demo has both stations
    return Devices(
        fingerprints={st: _fingerprint(config, st, fc) for st, fc in stations.items()},
        cards=_cards(config), ble=_ble(config), camera=_camera(config), voice=_voice(config),
        printer=_printer(config), door=_door(config))


def _real(config: Config, driver: str) -> bool:
    return not config.simulate and driver not in ("simulator", "text")


def _fingerprint(config: Config, station: str, fc) -> FingerprintModule:
    if _real(config, fc.driver):
        from drivers.fingerprint.uart import UartFingerprint
        # which template is in which slot of this module, so a restart loads only what changed
        return UartFingerprint(station, fc.port, baudrate=fc.baudrate, address=fc.address, password=fc.password,
                               library_file=config.paths.state_dir / f"fingerprint-{station}-library.json",
                               touch_pin=fc.touch_pin, touch_active_high=fc.touch_active_high)
    # simulation runs the real protocol against the module emulator on a pty (issue 4), its touch output
    # always wired: polling two idle modules every 50 ms was the demo's only busy loop (issue 20); the
    # polling path has its own tests on the emulator (test_fingerprint_faults, bench_fingerprint)
    from drivers.fingerprint.emulated import EmulatedFingerprint
    return EmulatedFingerprint(station, touch=True)


def _cards(config: Config) -> InputDevice:
    c = config.devices.cards
    if _real(config, c.driver):
        from drivers.cards.pcsc import PcscCardReader
        from drivers.cards.sun_url import SunLayout
        layout = SunLayout(c.sun_url_style, c.sun_picc_param, c.sun_mac_param, c.sun_picc_segment, c.sun_mac_segment,
                           c.sun_mac_input_offset, c.sun_random_uid)
        # UID-only is decided per box in flows: a staff badge is UID-only and must still read
        return PcscCardReader(reader_filter=c.reader, allow_uid_only=True, layout=layout)
    from drivers.cards.sim import SimulatedCardReader
    return SimulatedCardReader()


def _ble(config: Config) -> InputDevice:
    b = config.devices.ble
    if _real(config, b.driver):
        from drivers.ble.presence import BeaconPattern
        from drivers.ble.scanner import BleakBeaconScanner
        patterns = tuple(BeaconPattern(p.identity, p.local_name, p.company_id, p.data_prefix) for p in b.patterns)
        return BleakBeaconScanner(rssi_threshold=b.rssi_threshold, dwell_seconds=b.dwell_seconds,
                                  silence_seconds=b.silence_seconds, patterns=patterns)
    from drivers.ble.sim import SimulatedBeaconScanner
    return SimulatedBeaconScanner()


def _camera(config: Config) -> Camera:
    c = config.devices.camera
    if _real(config, c.driver) and c.driver == "opencv":
        # OpenCV in a worker process started when a handover begins: a terminal at rest does not carry it
        from drivers.camera.process import CameraProcess
        return CameraProcess(c.source)
    from drivers.camera.sim import SimulatedCamera
    camera = SimulatedCamera()
    camera.present = c.driver != "none"
    return camera


def _voice(config: Config) -> Voice:
    v = config.devices.voice
    # espeak-ng speaks when asked for, or in a demo on a machine that has it and a sound card
    if v.driver == "espeak" or (config.simulate and shutil.which("espeak-ng") and shutil.which("aplay")
                                and _has_sound_card()):
        from drivers.voice.espeak import EspeakVoice
        return EspeakVoice(voice=v.voice, rate=v.rate)
    from drivers.voice.sim import TextVoice
    return TextVoice()


def _has_sound_card() -> bool:
    try:
        with open("/proc/asound/cards") as f:
            return "no soundcards" not in f.read()
    except OSError:
        return False


def _printer(config: Config) -> Printer:
    p = config.devices.printer
    if _real(config, p.driver):
        from drivers.printer.escpos import EscposPrinter
        params = {"file": {"path": str(p.path)}, "serial": {"port": p.port, "baudrate": p.baudrate},
                  "usb": {"vendor_id": p.vendor_id, "product_id": p.product_id}}[p.driver]
        return EscposPrinter(kind=p.driver, cache_dir=config.paths.cache_dir, **params)
    from drivers.printer.sim import SimulatedPrinter
    return SimulatedPrinter()


def _door(config: Config) -> DoorOutput:
    dc = config.devices.door
    if _real(config, dc.driver):
        if dc.driver == "gpio":
            from drivers.door.gpio import GpioDoor
            return GpioDoor(dc.pin, active_high=dc.active_high)
        from drivers.door.relay import SerialRelayDoor
        return SerialRelayDoor(dc.port)
    from drivers.door.sim import SimulatedDoor
    return SimulatedDoor()


@dataclass(frozen=True)
class Enrolment:
    template: bytes
    not_stored: dict[str, str]          # station -> why that module does not hold it yet


async def enrol_finger(fingerprints: dict[str, FingerprintModule], station: str, slot: int) -> Enrolment:
    """Enrol at one station's module (two captures, merged, checked against the library for a duplicate,
    stored, read back), then store the template in every other module. A module that cannot take it now
    keeps it as wanted and the background sync retries; one of another type (512 vs 768 bytes) refuses it
    with a clear error. The caller seals the template in the store and journals the enrolment."""
    template = await fingerprints[station].enrol(slot)
    not_stored = {}
    for other, module in fingerprints.items():
        if other == station:
            continue
        try:
            await module.load_template(slot, template)
        except Exception as exc:        # the capture stands; the screen says which module lacks it
            not_stored[other] = str(exc)
    return Enrolment(template, not_stored)
