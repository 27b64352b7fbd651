"""The agent's configuration: one TOML file, checked completely before anything starts.

A missing file (or none given) means simulation with built-in defaults. Every unknown key and every
bad value stops start-up with a message that names the key (dotted), the value and what is allowed:
a technician reading the journal of a box that will not start must see at once what to fix.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import sys
import tomllib
import zoneinfo
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from flows.model import SiteType

DEFAULT_STATE_DIR = Path("/var/lib/handover-agent")
SIMULATION_STATE_DIR = Path("var")          # relative to the working directory: a laptop demo
DEFAULT_SITE_ID = "branch-01"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and what is allowed."""


# --- the typed configuration -------------------------------------------------------------------

@dataclass(frozen=True)
class SiteConfig:
    id: str = DEFAULT_SITE_ID
    type: SiteType = SiteType.BRANCH
    name: str = ""
    timezone: str = "Asia/Shanghai"
    allow_password_confirmation: bool = False
    allow_uid_only_tags: bool = True
    min_escorts: int = 2
    max_failed_attempts: int = 5


@dataclass(frozen=True)
class DeviceConfig:
    id: str
    simulate: bool


@dataclass(frozen=True)
class PathsConfig:
    state_dir: Path

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.db"

    @property
    def photos_dir(self) -> Path:
        return self.state_dir / "photos"

    @property
    def reports_dir(self) -> Path:
        return self.state_dir / "reports"

    @property
    def backups_dir(self) -> Path:
        return self.state_dir / "backups"

    @property
    def keys_dir(self) -> Path:
        return self.state_dir / "keys"


@dataclass(frozen=True)
class ScreenConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    language: str = "zh-CN"
    idle_timeout_seconds: int = 120
    allow_remote: bool = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


@dataclass(frozen=True)
class FingerprintConfig:
    station: str                      # "door" or "counter"
    driver: str = "simulator"
    port: str | None = None
    baudrate: int = 57600
    address: int = 0xFFFFFFFF
    password: int = 0


@dataclass(frozen=True)
class CardsConfig:
    driver: str = "simulator"
    reader: str | None = None         # part of the PC/SC reader name, any case; None = every reader
    # Where box tags put their NTAG 424 DNA SUN message in the NDEF URL (docs/config.md, AN12196 terms)
    sun_url_style: str = "query"      # "query": named parameters; "path": path segments by position
    sun_picc_param: str = "picc_data"
    sun_mac_param: str = "cmac"
    sun_picc_segment: int = -2
    sun_mac_segment: int = -1
    sun_mac_input_offset: int | None = None   # SDMMACInputOffset; None = SDMMACOffset (empty MAC input)
    sun_random_uid: bool = False      # tags answer with a random UID; the box is found inside PICCData


@dataclass(frozen=True)
class BleConfig:
    driver: str = "simulator"
    rssi_threshold: int = -75
    dwell_seconds: float = 3.0
    silence_seconds: float = 60.0
    patterns: tuple["BeaconPatternConfig", ...] = ()


@dataclass(frozen=True)
class BeaconPatternConfig:
    """A truck tag that is neither iBeacon nor Eddystone: matched by name and/or manufacturer data."""
    identity: str
    local_name: str | None = None         # a regular expression over the whole advertised name
    company_id: int | None = None         # Bluetooth SIG company identifier
    data_prefix: bytes = b""              # manufacturer data starts with these bytes


@dataclass(frozen=True)
class CameraConfig:
    driver: str = "simulator"
    source: str | int | None = None   # /dev/videoN, a camera index, or a video file


@dataclass(frozen=True)
class VoiceConfig:
    driver: str = "text"
    voice: str = "cmn"
    rate: int = 160


@dataclass(frozen=True)
class PrinterConfig:
    driver: str = "simulator"
    path: Path | None = None          # driver "file": where reports are written (a file or /dev/usb/lpN)
    port: str | None = None           # driver "serial"
    baudrate: int = 9600
    vendor_id: int | None = None      # driver "usb"
    product_id: int | None = None


@dataclass(frozen=True)
class DoorConfig:
    driver: str = "simulator"
    pin: int | None = None            # driver "gpio": BCM pin number
    active_high: bool = True
    port: str | None = None           # driver "serial-relay"


@dataclass(frozen=True)
class DevicesConfig:
    fingerprint_door: FingerprintConfig = field(default_factory=lambda: FingerprintConfig("door"))
    fingerprint_counter: FingerprintConfig | None = None
    cards: CardsConfig = field(default_factory=CardsConfig)
    ble: BleConfig = field(default_factory=BleConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    voice: VoiceConfig = field(default_factory=VoiceConfig)
    printer: PrinterConfig = field(default_factory=PrinterConfig)
    door: DoorConfig = field(default_factory=DoorConfig)

    def all(self) -> list[Any]:
        found = [self.fingerprint_door, self.fingerprint_counter, self.cards, self.ble,
                 self.camera, self.voice, self.printer, self.door]
        return [d for d in found if d is not None]

    def any_hardware(self) -> bool:
        return any(d.driver not in ("simulator", "text", "none") for d in self.all())


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = False
    host: str = "localhost"
    port: int = 8883
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive: int = 60
    topic_prefix: str = "ht/v1"


@dataclass(frozen=True)
class ComplaintsConfig:
    """Per-bank complaint rules (SPEC §6): deadlines in working days, and head office's calendar."""
    deadlines: dict = field(default_factory=dict)    # DeadlineRules fields; missing ones keep the defaults
    holidays: tuple[str, ...] = ()                    # ISO dates off, overriding the built-in calendar
    workdays: tuple[str, ...] = ()                    # ISO dates worked (调休 make-up days)


@dataclass(frozen=True)
class BackupConfig:
    interval_minutes: int = 60
    keep: int = 48


@dataclass(frozen=True)
class Config:
    site: SiteConfig
    device: DeviceConfig
    paths: PathsConfig
    screen: ScreenConfig
    devices: DevicesConfig
    mqtt: MqttConfig
    backup: BackupConfig
    complaints: ComplaintsConfig = field(default_factory=ComplaintsConfig)
    source: Path | None = None        # the file it came from; None = built-in defaults

    @property
    def simulate(self) -> bool:
        return self.device.simulate

    def as_simulation(self) -> "Config":
        """The same configuration with every device simulated (the CLI's --simulate)."""
        return replace(self, device=replace(self.device, simulate=True))

    def device_paths(self) -> list[str]:
        """Device nodes the configured real drivers open: what the service unit's DeviceAllow= needs."""
        if self.simulate:
            return []
        d = self.devices
        paths: list[str | None] = []
        for fp in (d.fingerprint_door, d.fingerprint_counter):
            if fp is not None and fp.driver == "uart":
                paths.append(fp.port)
        if d.camera.driver == "opencv":
            paths.append(str(d.camera.source) if isinstance(d.camera.source, str) else None)
            if isinstance(d.camera.source, int):
                paths.append(f"/dev/video{d.camera.source}")
        if d.printer.driver == "serial":
            paths.append(d.printer.port)
        if d.printer.driver == "file" and d.printer.path is not None:
            paths.append(str(d.printer.path))
        if d.door.driver == "serial-relay":
            paths.append(d.door.port)
        if d.door.driver == "gpio":
            paths.append("/dev/gpiochip0")
        unique: list[str] = []
        for p in paths:
            if p and p.startswith("/dev/") and p not in unique:
                unique.append(p)
        return unique

    def device_allow(self) -> list[str]:
        """DeviceAllow= values: the named nodes, plus the device classes that a replugged USB device
        may come back as (ttyUSB0 can return as ttyUSB1), the USB bus for a USB printer, and the
        sound cards when prompts are spoken (aplay opens /dev/snd/*)."""
        if self.simulate:
            return []
        allow = [f"{p} rw" for p in self.device_paths()]
        if any(p.startswith(("/dev/fingerprint-", "/dev/ttyUSB", "/dev/ttyACM")) for p in self.device_paths()):
            allow += ["char-ttyUSB rw", "char-ttyACM rw"]
        if self.devices.camera.driver == "opencv":
            allow.append("char-video4linux rw")
        if self.devices.printer.driver == "usb":
            allow.append("char-usb_device rw")
        if self.devices.voice.driver == "espeak":
            allow.append("char-alsa rw")
        return allow


# --- reading and checking ----------------------------------------------------------------------

def _describe(value: Any) -> str:
    return repr(value) if not isinstance(value, bool) else str(value).lower()


class _Table:
    """One TOML table being read: typed getters, and a final check that nothing unknown is left."""

    def __init__(self, data: Any, name: str, allowed: list[str]):
        if not isinstance(data, dict):
            raise ConfigError(f"{name}: must be a table ([{name}]), got {_describe(data)}")
        self.data, self.name, self.allowed = data, name, allowed
        for key in data:
            if key not in allowed:
                raise ConfigError(f"{name}.{key}: unknown key; allowed keys in [{name}]: {', '.join(allowed)}")

    def checked(self, key: str, default: Any, check: Callable[[Any], bool], what: str) -> Any:
        assert key in self.allowed, key
        if key not in self.data:
            return default
        value = self.data[key]
        if not check(value):
            raise ConfigError(f"{self.name}.{key}: {_describe(value)} is not allowed; expected {what}")
        return value

    def str(self, key: str, default: str | None = None, required: bool = False) -> Any:
        if required and key not in self.data:
            raise ConfigError(f"{self.name}.{key}: required (a non-empty string)")
        return self.checked(key, default, lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")

    def bool(self, key: str, default: bool) -> bool:
        return self.checked(key, default, lambda v: isinstance(v, bool), "true or false")

    def int(self, key: str, default: int | None, lo: int | None = None, hi: int | None = None) -> Any:
        bounds = _bounds(lo, hi)
        return self.checked(key, default, lambda v: _is_int(v) and _within(v, lo, hi), f"an integer{bounds}")

    def number(self, key: str, default: float, lo: float | None = None, hi: float | None = None) -> float:
        bounds = _bounds(lo, hi)
        ok = lambda v: (_is_int(v) or isinstance(v, float)) and _within(v, lo, hi)  # noqa: E731
        return float(self.checked(key, default, ok, f"a number{bounds}"))

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        listed = ", ".join(f'"{c}"' for c in choices)
        return self.checked(key, default, lambda v: v in choices, f"one of {listed}")

    def path(self, key: str, default: Path | None = None) -> Path | None:
        value = self.str(key)
        return Path(value) if value is not None else default

    def device_node(self, key: str) -> str | None:
        return self.checked(key, None, lambda v: isinstance(v, str) and v.startswith("/dev/"),
                         'a device path such as "/dev/ttyUSB0"')

    def table(self, key: str) -> Any:
        return self.data.get(key, {})

    def require(self, key: str, why: str) -> None:
        if key not in self.data:
            raise ConfigError(f"{self.name}.{key}: required {why}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _within(v: float, lo: float | None, hi: float | None) -> bool:
    return (lo is None or v >= lo) and (hi is None or v <= hi)


def _bounds(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" from {lo} to {hi}"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


_SECTIONS = ["site", "device", "paths", "screen", "devices", "mqtt", "backup", "complaints"]
_DEVICE_SECTIONS = ["fingerprint_door", "fingerprint_counter", "cards", "ble", "camera", "voice", "printer", "door"]
_BAUDRATES = tuple(9600 * n for n in range(1, 13))


def _provisioned(state_dir: Path) -> dict | None:
    from offline.provisioning import provisioned_config
    try:
        return provisioned_config(state_dir)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"provisioned configuration under {state_dir} cannot be read: {e}") from None


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and check the configuration; None or a missing file gives the simulation defaults."""
    if path is None or not Path(path).exists():
        return _build({}, source=None, base_dir=Path.cwd())
    file = Path(path)
    try:
        with open(file, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:     # its message carries "(at line N, column M)"
        raise ConfigError(f"{file}: not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{file}: cannot be read: {e.strerror}") from None
    try:
        config = _build(data, source=file, base_dir=file.resolve().parent)
        provisioned = _provisioned(config.paths.state_dir)
        if provisioned:
            # head office's provisioning bundle (SPEC §5) overrides what the file says of site, device, mqtt
            config = _build(_merged(data, provisioned), source=file, base_dir=file.resolve().parent)
        return config
    except ConfigError as e:
        raise ConfigError(f"{file}: {e}") from None


def _build(data: dict[str, Any], source: Path | None, base_dir: Path) -> Config:
    root = _Table(data, "(top level)", _SECTIONS)
    site = _site(_Table(root.table("site"), "site", [
        "id", "type", "name", "timezone", "allow_password_confirmation", "allow_uid_only_tags",
        "min_escorts", "max_failed_attempts"]), required=source is not None)
    devices = _devices(_Table(root.table("devices"), "devices", _DEVICE_SECTIONS))

    dev = _Table(root.table("device"), "device", ["id", "simulate"])
    device = DeviceConfig(
        id=dev.str("id", f"{site.id}-terminal"),
        # No file, or no real driver named: a laptop demo (SPEC §7).
        simulate=dev.bool("simulate", source is None or not devices.any_hardware()),
    )

    p = _Table(root.table("paths"), "paths", ["state_dir"])
    state_dir = p.path("state_dir", SIMULATION_STATE_DIR if device.simulate else DEFAULT_STATE_DIR)
    assert state_dir is not None
    paths = PathsConfig(state_dir=(base_dir / state_dir) if not state_dir.is_absolute() else state_dir)

    return Config(
        site=site, device=device, paths=paths,
        screen=_screen(_Table(root.table("screen"), "screen", [
            "host", "port", "language", "idle_timeout_seconds", "allow_remote"])),
        devices=devices,
        mqtt=_mqtt(_Table(root.table("mqtt"), "mqtt", [
            "enabled", "host", "port", "ca_file", "cert_file", "key_file", "keepalive", "topic_prefix"]), base_dir),
        backup=_backup(_Table(root.table("backup"), "backup", ["interval_minutes", "keep"])),
        complaints=_complaints(_Table(root.table("complaints"), "complaints", ["deadlines", "calendar"])),
        source=source,
    )


def _site(t: _Table, required: bool) -> SiteConfig:
    tz = t.str("timezone", "Asia/Shanghai")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f'site.timezone: {tz!r} is not a known IANA time zone; expected a name such as "Asia/Shanghai"') from None
    return SiteConfig(
        id=t.str("id", DEFAULT_SITE_ID, required=required),
        type=SiteType(t.choice("type", "branch", tuple(s.value for s in SiteType))),
        name=t.str("name", ""),
        timezone=tz,
        allow_password_confirmation=t.bool("allow_password_confirmation", False),
        allow_uid_only_tags=t.bool("allow_uid_only_tags", True),
        min_escorts=t.int("min_escorts", 2, lo=2, hi=10),
        max_failed_attempts=t.int("max_failed_attempts", 5, lo=1, hi=20),
    )


def _screen(t: _Table) -> ScreenConfig:
    allow_remote = t.bool("allow_remote", False)
    host = t.str("host", "127.0.0.1")
    if not allow_remote and not _is_loopback(host):
        raise ConfigError(
            f"screen.host: {host!r} is not a loopback address; the screen must be reachable only from the "
            f'device, so use "127.0.0.1", "::1" or "localhost" (or set screen.allow_remote = true)')
    return ScreenConfig(
        host=host,
        port=t.int("port", 8080, lo=1, hi=65535),
        language=t.choice("language", "zh-CN", ("zh-CN", "en")),
        idle_timeout_seconds=t.int("idle_timeout_seconds", 120, lo=10, hi=3600),
        allow_remote=allow_remote,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _fingerprint(t: _Table, station: str) -> FingerprintConfig:
    driver = t.choice("driver", "simulator", ("simulator", "uart"))
    if driver == "uart":
        t.require("port", f'when devices.fingerprint_{station}.driver = "uart" (e.g. "/dev/fingerprint-{station}")')
    address = t.checked("address", 0xFFFFFFFF, _is_address, 'an integer or hex string from 0 to 0xFFFFFFFF, e.g. "0xFFFFFFFF"')
    return FingerprintConfig(
        station=station, driver=driver,
        port=t.device_node("port"),
        baudrate=t.checked("baudrate", 57600, lambda v: _is_int(v) and v in _BAUDRATES,
                        f"9600 x N for N from 1 to 12 ({', '.join(map(str, _BAUDRATES))})"),
        address=int(address, 16) if isinstance(address, str) else address,
        password=t.int("password", 0, lo=0, hi=0xFFFFFFFF),
    )


def _is_address(v: Any) -> bool:
    if isinstance(v, str):
        try:
            v = int(v, 16)
        except ValueError:
            return False
    return _is_int(v) and 0 <= v <= 0xFFFFFFFF


def _complaints(t: _Table) -> ComplaintsConfig:
    from datetime import date

    from flows.workdays import DeadlineRules
    deadlines = _Table(t.table("deadlines"), "complaints.deadlines",
                       [f.name for f in dataclasses.fields(DeadlineRules)])
    try:
        DeadlineRules.from_dict(deadlines.data)
    except ValueError as e:
        raise ConfigError(f"complaints.deadlines: {e}") from None
    cal = _Table(t.table("calendar"), "complaints.calendar", ["holidays", "workdays"])

    def dates(key: str) -> tuple[str, ...]:
        values = cal.checked(key, [], lambda v: isinstance(v, list), 'a list of dates like ["2027-01-01"]')
        for v in values:
            try:
                date.fromisoformat(v)
            except (TypeError, ValueError):
                raise ConfigError(f"complaints.calendar.{key}: {_describe(v)} is not an ISO date (YYYY-MM-DD)") from None
        return tuple(values)
    return ComplaintsConfig(dict(deadlines.data), dates("holidays"), dates("workdays"))


def _beacon_patterns(items: Any) -> tuple[BeaconPatternConfig, ...]:
    """[[devices.ble.patterns]] tables: identity plus a local_name regex and/or company_id (+ data_prefix hex)."""
    import re
    if not isinstance(items, list):
        raise ConfigError("devices.ble.patterns: must be an array of tables ([[devices.ble.patterns]])")
    out = []
    for i, item in enumerate(items):
        t = _Table(item, f"devices.ble.patterns[{i}]", ["identity", "local_name", "company_id", "data_prefix"])
        name = t.str("local_name")
        if name is not None:
            try:
                re.compile(name)
            except re.error as e:
                raise ConfigError(f"{t.name}.local_name: {name!r} is not a regular expression ({e})") from None
        prefix = t.checked("data_prefix", "", lambda v: isinstance(v, str) and _is_hex(v), "hexadecimal bytes, e.g. \"0215\"")
        company = t.int("company_id", None, lo=0, hi=0xFFFF)
        if name is None and company is None:
            raise ConfigError(f"{t.name}: needs local_name or company_id to match on")
        out.append(BeaconPatternConfig(t.str("identity", required=True), name, company, bytes.fromhex(prefix)))
    return tuple(out)


def _is_hex(v: str) -> bool:
    try:
        bytes.fromhex(v)
        return True
    except ValueError:
        return False


_CARDS_SUN_KEYS = ["sun_url_style", "sun_picc_param", "sun_mac_param", "sun_picc_segment", "sun_mac_segment",
                   "sun_mac_input_offset", "sun_random_uid"]
_URL_PARAM = re.compile(r"[A-Za-z0-9_.~-]{1,32}")


def _cards(c: _Table) -> CardsConfig:
    param_ok = lambda v: isinstance(v, str) and _URL_PARAM.fullmatch(v) is not None  # noqa: E731
    param_what = "a URL parameter name (1 to 32 of A-Z a-z 0-9 _ . ~ -)"
    cards = CardsConfig(
        driver=c.choice("driver", "simulator", ("simulator", "pcsc")), reader=c.str("reader"),
        sun_url_style=c.choice("sun_url_style", "query", ("query", "path")),
        sun_picc_param=c.checked("sun_picc_param", "picc_data", param_ok, param_what),
        sun_mac_param=c.checked("sun_mac_param", "cmac", param_ok, param_what),
        sun_picc_segment=c.int("sun_picc_segment", -2, lo=-16, hi=15),
        sun_mac_segment=c.int("sun_mac_segment", -1, lo=-16, hi=15),
        sun_mac_input_offset=c.int("sun_mac_input_offset", None, lo=0, hi=0xFFFFFF),
        sun_random_uid=c.bool("sun_random_uid", False),
    )
    if cards.sun_picc_param == cards.sun_mac_param:
        raise ConfigError(f"{c.name}.sun_mac_param: must differ from sun_picc_param ({cards.sun_picc_param!r})")
    if cards.sun_picc_segment == cards.sun_mac_segment:
        raise ConfigError(f"{c.name}.sun_mac_segment: must differ from sun_picc_segment ({cards.sun_picc_segment})")
    return cards


def _devices(t: _Table) -> DevicesConfig:
    def sub(name: str, allowed: list[str]) -> _Table:
        return _Table(t.table(name), f"devices.{name}", allowed)

    fp_keys = ["driver", "port", "baudrate", "address", "password"]
    counter = None
    if "fingerprint_counter" in t.data:
        counter = _fingerprint(sub("fingerprint_counter", fp_keys), "counter")

    c = sub("cards", ["driver", "reader", *_CARDS_SUN_KEYS])
    b = sub("ble", ["driver", "rssi_threshold", "dwell_seconds", "silence_seconds", "patterns"])
    cam = sub("camera", ["driver", "source"])
    v = sub("voice", ["driver", "voice", "rate"])
    pr = sub("printer", ["driver", "path", "port", "baudrate", "vendor_id", "product_id"])
    d = sub("door", ["driver", "pin", "active_high", "port"])

    cam_driver = cam.choice("driver", "simulator", ("simulator", "opencv", "none"))
    source = cam.checked("source", None, lambda s: (isinstance(s, str) and s != "") or (_is_int(s) and s >= 0),
                      'a device path ("/dev/video0"), a camera index (0) or a video file path')
    if cam_driver == "opencv" and source is None:
        cam.require("source", 'when devices.camera.driver = "opencv" (e.g. "/dev/video0")')

    pr_driver = pr.choice("driver", "simulator", ("simulator", "file", "serial", "usb"))
    for needed, when in (("path", "file"), ("port", "serial"), ("vendor_id", "usb"), ("product_id", "usb")):
        if pr_driver == when:
            pr.require(needed, f'when devices.printer.driver = "{when}"')

    door_driver = d.choice("driver", "simulator", ("simulator", "gpio", "serial-relay"))
    if door_driver == "gpio":
        d.require("pin", 'when devices.door.driver = "gpio" (a BCM pin number, e.g. 17)')
    if door_driver == "serial-relay":
        d.require("port", 'when devices.door.driver = "serial-relay" (e.g. "/dev/ttyUSB2")')

    return DevicesConfig(
        fingerprint_door=_fingerprint(sub("fingerprint_door", fp_keys), "door"),
        fingerprint_counter=counter,
        cards=_cards(c),
        ble=BleConfig(
            driver=b.choice("driver", "simulator", ("simulator", "bleak")),
            rssi_threshold=b.int("rssi_threshold", -75, lo=-120, hi=0),
            dwell_seconds=b.number("dwell_seconds", 3.0, lo=0, hi=600),
            silence_seconds=b.number("silence_seconds", 60.0, lo=1, hi=3600),
            patterns=_beacon_patterns(b.data.get("patterns", [])),
        ),
        camera=CameraConfig(driver=cam_driver, source=source),
        voice=VoiceConfig(
            driver=v.choice("driver", "text", ("text", "espeak")),
            voice=v.str("voice", "cmn"),
            rate=v.int("rate", 160, lo=50, hi=400),
        ),
        printer=PrinterConfig(
            driver=pr_driver, path=pr.path("path"), port=pr.device_node("port"),
            baudrate=pr.checked("baudrate", 9600, lambda x: _is_int(x) and x in _BAUDRATES,
                             f"9600 x N for N from 1 to 12 ({', '.join(map(str, _BAUDRATES))})"),
            vendor_id=pr.int("vendor_id", None, lo=0, hi=0xFFFF),
            product_id=pr.int("product_id", None, lo=0, hi=0xFFFF),
        ),
        door=DoorConfig(
            driver=door_driver, pin=d.int("pin", None, lo=0, hi=27),
            active_high=d.bool("active_high", True), port=d.device_node("port"),
        ),
    )


def _mqtt(t: _Table, base_dir: Path) -> MqttConfig:
    enabled = t.bool("enabled", False)
    if enabled:
        for key in ("host", "ca_file", "cert_file", "key_file"):
            t.require(key, "when mqtt.enabled = true")

    def file(key: str) -> Path | None:
        p = t.path(key)
        return None if p is None else (p if p.is_absolute() else base_dir / p)

    prefix = t.checked("topic_prefix", "ht/v1",
                    lambda v: isinstance(v, str) and v != "" and not set(v) & set("#+") and not v.endswith("/"),
                    'a topic prefix without "#", "+" or a trailing "/", e.g. "ht/v1"')
    return MqttConfig(
        enabled=enabled, host=t.str("host", "localhost"), port=t.int("port", 8883, lo=1, hi=65535),
        ca_file=file("ca_file"), cert_file=file("cert_file"), key_file=file("key_file"),
        keepalive=t.int("keepalive", 60, lo=5, hi=3600), topic_prefix=prefix,
    )


def _backup(t: _Table) -> BackupConfig:
    return BackupConfig(
        interval_minutes=t.int("interval_minutes", 60, lo=1, hi=7 * 24 * 60),
        keep=t.int("keep", 48, lo=1, hi=10000),
    )


def _main(argv: list[str]) -> int:
    """`python -m agent.config COMMAND FILE`: what the units need from the configuration, for
    systemd/handover-apply-config (they cannot read TOML themselves)."""
    commands = ("check", "device-allow", "backup-interval", "unit-env")
    if len(argv) != 2 or argv[0] not in commands:
        print(f"usage: python -m agent.config {{{'|'.join(commands)}}} CONFIG", file=sys.stderr)
        return 2
    try:
        config = load_config(argv[1])
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 1
    command = argv[0]
    if command == "device-allow":
        print("[Service]")
        for line in config.device_allow():
            print(f"DeviceAllow={line}")
    elif command == "backup-interval":
        print("[Timer]")
        print(f"OnUnitActiveSec={config.backup.interval_minutes}min")
    elif command == "unit-env":
        print(f"HANDOVER_SCREEN_URL={config.screen.url}")
        if config.source is not None:   # unprovisioned: the unit's own default, from the machine id
            print(f"HANDOVER_DEVICE_ID={config.device.id}")
        print(f"HANDOVER_STATE_DIR={config.paths.state_dir}")
    else:
        print(f"{argv[1]}: ok (site {config.site.id}, simulate={str(config.simulate).lower()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
