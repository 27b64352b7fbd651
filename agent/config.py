"""The agent's configuration: one TOML file, checked completely before anything starts.

A missing file (or none given) means simulation with built-in defaults. Every unknown key and every
bad value stops start-up with a message that names the key (dotted), the value and what is allowed:
a technician reading the journal of a box that will not start must see at once what to fix.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import sys
import tomllib
import zoneinfo
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from flows.model import SiteType
from flows.complaint_rules import EscalationRules, HourRules
from flows.workdays import DeadlineRules
from protocol.ids import ID_PATTERN, ID_WHAT

DEFAULT_STATE_DIR = Path("/var/lib/handover-agent")
SIMULATION_STATE_DIR = Path("var")          # relative to the working directory: a laptop demo
DEFAULT_SITE_ID = "branch-01"


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key and what is allowed."""


# --- one source of truth: each setting's default, type and range live on its dataclass field -------

@dataclass(frozen=True)
class Rule:
    """How one setting is read and checked. `kind` names a `_Table` getter; `remote` says whether head
    office may change it with the `config` downlink and when it then takes effect."""
    kind: str                                # text, id, bool, int, number, choice, path, device_node, baudrate
    lo: float | None = None
    hi: float | None = None
    choices: tuple = ()
    remote: str | None = None                # None: file/provisioning only; "now" or "next_handover"


def setting(default: Any, kind: str, **rule: Any) -> Any:
    """A dataclass field with its rule: the default is written here and nowhere else."""
    return field(default=default, metadata={"rule": Rule(kind, **rule)})


def rules_of(cls: type) -> dict[str, tuple[Any, Rule]]:
    """{key: (default, rule)} of a settings dataclass, in declaration order (the documented order)."""
    return {f.name: (f.default, f.metadata["rule"]) for f in dataclasses.fields(cls) if "rule" in f.metadata}


def _read(cls: type, t: "_Table", **given: Any) -> Any:
    """Build `cls` from table t by its fields' rules; `given` supplies fields decided elsewhere."""
    values = {}
    for key, (default, rule) in rules_of(cls).items():
        if key not in given:
            values[key] = t.by_rule(key, default, rule)
    return cls(**values, **given)


# --- the typed configuration -------------------------------------------------------------------

@dataclass(frozen=True)
class SiteConfig:
    id: str = setting(DEFAULT_SITE_ID, "id")
    type: SiteType = setting(SiteType.BRANCH, "choice", choices=tuple(SiteType))
    name: str = setting("", "text", remote="now")
    timezone: str = setting("Asia/Shanghai", "timezone")
    allow_password_confirmation: bool = setting(False, "bool", remote="next_handover")
    allow_uid_only_tags: bool = setting(True, "bool", remote="next_handover")
    min_escorts: int = setting(2, "int", lo=2, hi=10, remote="next_handover")
    max_failed_attempts: int = setting(5, "int", lo=1, hi=20, remote="next_handover")


@dataclass(frozen=True)
class DeviceConfig:
    id: str = setting(None, "id")          # default: "<site id>-terminal"
    simulate: bool = setting(None, "bool")  # default: no file, or no real driver named


@dataclass(frozen=True)
class PathsConfig:
    state_dir: Path = setting(None, "path")  # default: DEFAULT_STATE_DIR, or SIMULATION_STATE_DIR
    # below this free space new handovers are refused (agent.storage)
    min_free_mb: int = setting(64, "int", lo=1, hi=1_000_000)

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

    @property
    def cache_dir(self) -> Path:
        """What a library may keep between starts (python-escpos' printer database), never /tmp."""
        return self.state_dir / "cache"


@dataclass(frozen=True)
class ScreenConfig:
    host: str = setting("127.0.0.1", "text")
    port: int = setting(8080, "int", lo=1, hi=65535)
    language: str = setting("zh-CN", "choice", choices=("zh-CN", "en"), remote="now")
    idle_timeout_seconds: int = setting(120, "int", lo=10, hi=3600, remote="now")
    allow_remote: bool = setting(False, "bool")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


@dataclass(frozen=True)
class FingerprintConfig:
    station: str                      # "door" or "counter"
    driver: str = setting("simulator", "choice", choices=("simulator", "uart"))
    port: str | None = setting(None, "device_node")
    baudrate: int = setting(57600, "baudrate")
    address: int = setting(0xFFFFFFFF, "address")
    password: int = setting(0, "int", lo=0, hi=0xFFFFFFFF)
    # the module's touch output (R307 TOUCH, R503 WAKEUP) on a GPIO input, BCM number; None: not wired, poll
    touch_pin: int | None = setting(None, "int", lo=0, hi=27)
    touch_active_high: bool = setting(True, "bool")


@dataclass(frozen=True)
class CardsConfig:
    driver: str = setting("simulator", "choice", choices=("simulator", "pcsc"))
    reader: str | None = setting(None, "text")    # part of the PC/SC reader name, any case; None = every reader
    # Where box tags put their NTAG 424 DNA SUN message in the NDEF URL (docs/config.md, AN12196 terms)
    sun_url_style: str = setting("query", "choice", choices=("query", "path"))  # named parameters / path segments
    sun_picc_param: str = setting("picc_data", "url_param")
    sun_mac_param: str = setting("cmac", "url_param")
    sun_picc_segment: int = setting(-2, "int", lo=-16, hi=15)
    sun_mac_segment: int = setting(-1, "int", lo=-16, hi=15)
    # SDMMACInputOffset; None = SDMMACOffset (empty MAC input)
    sun_mac_input_offset: int | None = setting(None, "int", lo=0, hi=0xFFFFFF)
    sun_random_uid: bool = setting(False, "bool")   # tags answer with a random UID; the box is inside PICCData


@dataclass(frozen=True)
class BleConfig:
    driver: str = setting("simulator", "choice", choices=("simulator", "bleak"))
    rssi_threshold: int = setting(-75, "int", lo=-120, hi=0)
    dwell_seconds: float = setting(3.0, "number", lo=0, hi=600)
    silence_seconds: float = setting(60.0, "number", lo=1, hi=3600)
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
    driver: str = setting("simulator", "choice", choices=("simulator", "opencv", "none"))
    source: str | int | None = setting(None, "video_source")   # /dev/videoN, a camera index, or a video file


@dataclass(frozen=True)
class VoiceConfig:
    driver: str = setting("text", "choice", choices=("text", "espeak"))
    voice: str = setting("cmn", "text")
    rate: int = setting(160, "int", lo=50, hi=400)


@dataclass(frozen=True)
class PrinterConfig:
    driver: str = setting("simulator", "choice", choices=("simulator", "file", "serial", "usb"))
    path: Path | None = setting(None, "path")         # driver "file": a file or /dev/usb/lpN
    port: str | None = setting(None, "device_node")   # driver "serial"
    baudrate: int = setting(9600, "baudrate")
    vendor_id: int | None = setting(None, "int", lo=0, hi=0xFFFF)   # driver "usb"
    product_id: int | None = setting(None, "int", lo=0, hi=0xFFFF)


@dataclass(frozen=True)
class DoorConfig:
    driver: str = setting("simulator", "choice", choices=("simulator", "gpio", "serial-relay"))
    pin: int | None = setting(None, "int", lo=0, hi=27)       # driver "gpio": BCM pin number
    active_high: bool = setting(True, "bool")
    port: str | None = setting(None, "device_node")          # driver "serial-relay"


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
    enabled: bool = setting(False, "bool")
    host: str = setting("localhost", "text")
    port: int = setting(8883, "int", lo=1, hi=65535)
    ca_file: Path | None = setting(None, "path")
    cert_file: Path | None = setting(None, "path")
    key_file: Path | None = setting(None, "path")
    keepalive: int = setting(60, "int", lo=5, hi=3600)
    topic_prefix: str = setting("ht/v1", "topic_prefix")


@dataclass(frozen=True)
class ComplaintsConfig:
    """Per-bank complaint rules (SPEC §6): deadlines in working days, and head office's calendar."""
    deadlines: dict = field(default_factory=dict)    # DeadlineRules fields; missing ones keep the defaults
    holidays: tuple[str, ...] = ()                    # ISO dates off, overriding the built-in calendar
    workdays: tuple[str, ...] = ()                    # ISO dates worked (调休 make-up days)
    hours: dict = field(default_factory=dict)         # flows.complaint_rules.HourRules fields
    escalation: dict = field(default_factory=dict)    # flows.complaint_rules.EscalationRules fields
    # published to customers on the kiosk and its receipt (the guidelines: channels, procedure, time)
    hotline: str = setting("", "text", remote="now")
    supervision_phone: str = setting("", "text", remote="now")
    appeal_body: str = setting("", "text", remote="now")
    # head office's complaint PUBLIC key (PEM, X25519): each complaint's details go up sealed to it
    hq_key: Path | None = setting(None, "path")


@dataclass(frozen=True)
class BackupConfig:
    interval_minutes: int = setting(60, "int", lo=1, hi=7 * 24 * 60)
    keep: int = setting(48, "int", lo=1, hi=10000)


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
        touch_wired = any(fp is not None and fp.driver == "uart" and fp.touch_pin is not None
                          for fp in (d.fingerprint_door, d.fingerprint_counter))
        if d.door.driver == "gpio" or touch_wired:
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

    def by_rule(self, key: str, default: Any, rule: Rule) -> Any:
        """Read one setting as its field's rule says (the same check for file, provisioning and downlink)."""
        k = rule.kind
        if k == "text":
            return self.str(key, default)
        if k == "id":
            return self.checked(key, default, lambda v: isinstance(v, str) and re.fullmatch(ID_PATTERN, v) is not None,
                                f"an id of {ID_WHAT} characters")
        if k == "bool":
            return self.bool(key, default)
        if k == "int":
            return self.int(key, default, lo=rule.lo, hi=rule.hi)
        if k == "number":
            return self.number(key, default, lo=rule.lo, hi=rule.hi)
        if k == "choice":
            v = self.choice(key, default, rule.choices)
            return rule.choices[rule.choices.index(v)]      # the enum member, for enum choices
        if k == "path":
            return self.path(key, default)
        if k == "device_node":
            return self.device_node(key)
        if k == "baudrate":
            return self.checked(key, default, lambda v: _is_int(v) and v in _BAUDRATES,
                                f"9600 x N for N from 1 to 12 ({', '.join(map(str, _BAUDRATES))})")
        if k == "address":
            v = self.checked(key, default, _is_address,
                             'an integer or hex string from 0 to 0xFFFFFFFF, e.g. "0xFFFFFFFF"')
            return int(v, 16) if isinstance(v, str) else v
        if k == "timezone":
            tz = self.str(key, default)
            try:
                zoneinfo.ZoneInfo(tz)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ConfigError(f'{self.name}.{key}: {tz!r} is not a known IANA time zone; expected a name such '
                                  'as "Asia/Shanghai"') from None
            return tz
        if k == "topic_prefix":
            return self.checked(key, default, lambda v: isinstance(v, str) and v != "" and not set(v) & set("#+")
                                and not v.endswith("/"), 'a topic prefix without "#", "+" or a trailing "/", e.g. "ht/v1"')
        if k == "url_param":
            return self.checked(key, default, lambda v: isinstance(v, str) and _URL_PARAM.fullmatch(v) is not None,
                                "a URL parameter name (1 to 32 of A-Z a-z 0-9 _ . ~ -)")
        if k == "video_source":
            return self.checked(key, default, lambda v: (isinstance(v, str) and v != "") or (_is_int(v) and v >= 0),
                                'a device path ("/dev/video0"), a camera index (0) or a video file path')
        raise AssertionError(k)

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


PROVISIONED_CONFIG = Path("provisioning") / "config.toml"   # under the state dir (offline/provisioning.py)
REMOTE_SETTINGS_FILE = "settings-from-hq.json"              # under the state dir: the config downlink's settings


def provisioned_config(state_dir: Path) -> dict | None:
    """The TOML fragment ([site], [device], [mqtt]) head office provisioned, or None if not provisioned."""
    path = Path(state_dir) / PROVISIONED_CONFIG
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        return tomllib.load(f)


def _provisioned(state_dir: Path) -> dict | None:
    try:
        return provisioned_config(state_dir)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"provisioned configuration under {state_dir} cannot be read: {e}") from None


def check_fragment(fragment: dict, base_dir: Path) -> None:
    """Check a provisioning bundle's settings with the file's rules (ConfigError names the key)."""
    _build(fragment, source=Path("provisioning"), base_dir=base_dir)


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and check the configuration; None or a missing file gives the simulation defaults."""
    if path is None or not Path(path).exists():
        return _with_remote_settings(_build({}, source=None, base_dir=Path.cwd()))
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
            # (and complaints.hq_key when it brought head office's complaint key)
            config = _build(_merged(data, provisioned), source=file, base_dir=file.resolve().parent)
    except ConfigError as e:
        raise ConfigError(f"{file}: {e}") from None
    return _with_remote_settings(config)


def _keys(cls: type, *extra: str) -> list[str]:
    return [*rules_of(cls), *extra]


def _build(data: dict[str, Any], source: Path | None, base_dir: Path) -> Config:
    root = _Table(data, "(top level)", _SECTIONS)
    site_t = _Table(root.table("site"), "site", _keys(SiteConfig))
    if source is not None:
        site_t.str("id", required=True)
    site = _read(SiteConfig, site_t)
    devices = _devices(_Table(root.table("devices"), "devices", _DEVICE_SECTIONS))

    dev = _Table(root.table("device"), "device", _keys(DeviceConfig))
    # No file, or no real driver named: a laptop demo (SPEC §7).
    device = DeviceConfig(id=dev.by_rule("id", f"{site.id}-terminal", rules_of(DeviceConfig)["id"][1]),
                          simulate=dev.bool("simulate", source is None or not devices.any_hardware()))

    p = _Table(root.table("paths"), "paths", _keys(PathsConfig))
    state_dir = p.path("state_dir", SIMULATION_STATE_DIR if device.simulate else DEFAULT_STATE_DIR)
    assert state_dir is not None
    paths = _read(PathsConfig, p, state_dir=(base_dir / state_dir) if not state_dir.is_absolute() else state_dir)

    return Config(
        site=site, device=device, paths=paths,
        screen=_screen(_Table(root.table("screen"), "screen", _keys(ScreenConfig))),
        devices=devices,
        mqtt=_mqtt(_Table(root.table("mqtt"), "mqtt", _keys(MqttConfig)), base_dir),
        backup=_read(BackupConfig, _Table(root.table("backup"), "backup", _keys(BackupConfig))),
        complaints=_complaints(_Table(root.table("complaints"), "complaints",
                                      _keys(ComplaintsConfig, "deadlines", "calendar", "hours", "escalation")),
                               base_dir),
        source=source,
    )


def _screen(t: _Table) -> ScreenConfig:
    screen = _read(ScreenConfig, t)
    if not screen.allow_remote and not _is_loopback(screen.host):
        raise ConfigError(
            f"screen.host: {screen.host!r} is not a loopback address; the screen must be reachable only from the "
            f'device, so use "127.0.0.1", "::1" or "localhost" (or set screen.allow_remote = true)')
    return screen


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _fingerprint(t: _Table, station: str) -> FingerprintConfig:
    if t.by_rule("driver", "simulator", rules_of(FingerprintConfig)["driver"][1]) == "uart":
        t.require("port", f'when devices.fingerprint_{station}.driver = "uart" (e.g. "/dev/fingerprint-{station}")')
    return _read(FingerprintConfig, t, station=station)


def _is_address(v: Any) -> bool:
    if isinstance(v, str):
        try:
            v = int(v, 16)
        except ValueError:
            return False
    return _is_int(v) and 0 <= v <= 0xFFFFFFFF


def _complaints(t: _Table, base_dir: Path) -> ComplaintsConfig:
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

    def rules(key: str, cls: type) -> dict:
        table = _Table(t.table(key), f"complaints.{key}", [f.name for f in dataclasses.fields(cls)])
        try:
            cls.from_dict(table.data)
        except ValueError as e:
            raise ConfigError(f"complaints.{key}: {e}") from None
        return dict(table.data)
    hq_key = t.path("hq_key")
    return _read(ComplaintsConfig, t, deadlines=dict(deadlines.data), holidays=dates("holidays"),
                 workdays=dates("workdays"), hours=rules("hours", HourRules),
                 escalation=rules("escalation", EscalationRules),
                 hq_key=hq_key if hq_key is None or hq_key.is_absolute() else base_dir / hq_key)


def _beacon_patterns(items: Any) -> tuple[BeaconPatternConfig, ...]:
    """[[devices.ble.patterns]] tables: identity plus a local_name regex and/or company_id (+ data_prefix hex)."""
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


_URL_PARAM = re.compile(r"[A-Za-z0-9_.~-]{1,32}")


def _cards(c: _Table) -> CardsConfig:
    cards = _read(CardsConfig, c)
    if cards.sun_picc_param == cards.sun_mac_param:
        raise ConfigError(f"{c.name}.sun_mac_param: must differ from sun_picc_param ({cards.sun_picc_param!r})")
    if cards.sun_picc_segment == cards.sun_mac_segment:
        raise ConfigError(f"{c.name}.sun_mac_segment: must differ from sun_picc_segment ({cards.sun_picc_segment})")
    return cards


def _devices(t: _Table) -> DevicesConfig:
    def sub(name: str, cls: type, *extra: str) -> _Table:
        return _Table(t.table(name), f"devices.{name}", _keys(cls, *extra))

    counter = None
    if "fingerprint_counter" in t.data:
        counter = _fingerprint(sub("fingerprint_counter", FingerprintConfig), "counter")

    b = sub("ble", BleConfig, "patterns")
    cam = _read(CameraConfig, sub("camera", CameraConfig))
    if cam.driver == "opencv" and cam.source is None:
        raise ConfigError('devices.camera.source: required when devices.camera.driver = "opencv" (e.g. "/dev/video0")')

    pr = sub("printer", PrinterConfig)
    printer = _read(PrinterConfig, pr)
    for needed, when in (("path", "file"), ("port", "serial"), ("vendor_id", "usb"), ("product_id", "usb")):
        if printer.driver == when:
            pr.require(needed, f'when devices.printer.driver = "{when}"')

    d = sub("door", DoorConfig)
    door = _read(DoorConfig, d)
    if door.driver == "gpio":
        d.require("pin", 'when devices.door.driver = "gpio" (a BCM pin number, e.g. 17)')
    if door.driver == "serial-relay":
        d.require("port", 'when devices.door.driver = "serial-relay" (e.g. "/dev/ttyUSB2")')

    return DevicesConfig(
        fingerprint_door=_fingerprint(sub("fingerprint_door", FingerprintConfig), "door"),
        fingerprint_counter=counter,
        cards=_cards(sub("cards", CardsConfig)),
        ble=_read(BleConfig, b, patterns=_beacon_patterns(b.data.get("patterns", []))),
        camera=cam,
        voice=_read(VoiceConfig, sub("voice", VoiceConfig)),
        printer=printer,
        door=door,
    )


def _mqtt(t: _Table, base_dir: Path) -> MqttConfig:
    if t.bool("enabled", False):
        for key in ("host", "ca_file", "cert_file", "key_file"):
            t.require(key, "when mqtt.enabled = true")
    m = _read(MqttConfig, t)

    def file(p: Path | None) -> Path | None:
        return None if p is None else (p if p.is_absolute() else base_dir / p)
    return replace(m, ca_file=file(m.ca_file), cert_file=file(m.cert_file), key_file=file(m.key_file))


# --- settings from head office: the `config` downlink (docs/mqtt.md) -------------------------------

# (dotted section, attribute path from Config, settings class): every section a key may live in.
_SECTION_CLASSES = (("site", ("site",), SiteConfig), ("device", ("device",), DeviceConfig),
                    ("paths", ("paths",), PathsConfig), ("screen", ("screen",), ScreenConfig),
                    ("mqtt", ("mqtt",), MqttConfig), ("backup", ("backup",), BackupConfig),
                    ("complaints", ("complaints",), ComplaintsConfig),
                    *((f"devices.{n}", ("devices", n), c) for n, c in (
                        ("fingerprint_door", FingerprintConfig), ("fingerprint_counter", FingerprintConfig),
                        ("cards", CardsConfig), ("ble", BleConfig), ("camera", CameraConfig),
                        ("voice", VoiceConfig), ("printer", PrinterConfig), ("door", DoorConfig))))


def all_settings() -> dict[str, tuple[tuple[str, ...], str, Rule]]:
    """'section.key' -> (attribute path, key, rule) for every setting that has a rule."""
    return {f"{section}.{key}": (path, key, rule)
            for section, path, cls in _SECTION_CLASSES for key, (_, rule) in rules_of(cls).items()}


def remote_keys() -> list[str]:
    """The settings head office may change by the `config` downlink."""
    return [k for k, (_, _, rule) in all_settings().items() if rule.remote]


def check_remote(settings: Any) -> dict[str, Any]:
    """Check a `config` downlink's settings ({"section.key": value}) by the same rules as the file.

    Every key is checked before anything changes; ConfigError names the first key that is unknown,
    not settable from head office, of the wrong type or out of range.
    """
    if not isinstance(settings, dict) or not settings:
        raise ConfigError("settings: must be an object of one or more {\"section.key\": value}")
    known, checked = all_settings(), {}
    for key, value in settings.items():
        if key not in known:
            raise ConfigError(f"{key}: unknown setting; head office may set {', '.join(remote_keys())}")
        path, leaf, rule = known[key]
        if not rule.remote:
            raise ConfigError(f"{key}: may not be set from head office (only in the device's configuration file "
                              "or its provisioning bundle)")
        checked[key] = _Table({leaf: value}, key.rsplit(".", 1)[0], [leaf]).by_rule(leaf, None, rule)
    return checked


def apply_settings(config: Config, settings: Any) -> tuple[Config, dict[str, str]]:
    """The configuration with head office's settings applied, and when each takes effect
    ("now", or "next_handover" for the rules a running handover was started with)."""
    checked = check_remote(settings)
    known = all_settings()
    for key, value in checked.items():
        path, leaf, _ = known[key]
        config = _replace_at(config, path, {leaf: value})
    return config, {k: known[k][2].remote for k in checked}


def settings_view(config: Config) -> dict[str, Any]:
    """The current value of every setting head office may change (GET /api/view, health)."""
    out, known = {}, all_settings()
    for key in _REMOTE_KEYS:
        path, leaf, _ = known[key]
        section = config
        for attr in path:
            section = getattr(section, attr)
        value = getattr(section, leaf)
        out[key] = value.value if hasattr(value, "value") else value
    return out


def save_remote_settings(state_dir: Path, settings: dict[str, Any]) -> None:
    """Keep accepted settings so a restart applies them too (temp, fsync, rename)."""
    path = Path(state_dir) / REMOTE_SETTINGS_FILE
    merged = {**_read_remote_file(path), **{k: (v.value if hasattr(v, "value") else v) for k, v in settings.items()}}
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(merged, f, ensure_ascii=False, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_remote_file(path: Path) -> dict:
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: settings from head office cannot be read: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: settings from head office must be a JSON object")
    return data


def _with_remote_settings(config: Config) -> Config:
    path = config.paths.state_dir / REMOTE_SETTINGS_FILE
    if not path.is_file():
        return config
    try:
        return apply_settings(config, _read_remote_file(path))[0]
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def _replace_at(obj: Any, path: tuple[str, ...], changes: dict) -> Any:
    if not path:
        return replace(obj, **changes)
    return replace(obj, **{path[0]: _replace_at(getattr(obj, path[0]), path[1:], changes)})


_REMOTE_KEYS = tuple(remote_keys())


# --- what only the machine can tell: files and folders the settings name ---------------------------

def check_files(config: Config) -> list[str]:
    """Problems with the files and folders the configuration names, each naming its key; [] if none.

    Run by `python -m agent.config check` and before the daemon starts, so a wrong path is a message
    naming the key instead of a traceback later.
    """
    problems = []
    state = config.paths.state_dir
    if state.exists() and not state.is_dir():
        problems.append(f"paths.state_dir: {str(state)!r} is a file, not a folder")
    elif not state.exists() and state.parent.exists() and not state.parent.is_dir():
        problems.append(f"paths.state_dir: {str(state.parent)!r} is a file, not a folder")
    if config.mqtt.enabled:
        for key, load in (("ca_file", x509.load_pem_x509_certificates), ("cert_file", x509.load_pem_x509_certificate),
                          ("key_file", lambda b: serialization.load_pem_private_key(b, None))):
            path = getattr(config.mqtt, key)
            try:
                load(path.read_bytes())
            except OSError as e:
                problems.append(f"mqtt.{key}: {str(path)!r} cannot be read ({e.strerror})")
            except (ValueError, TypeError):
                what = "a private key" if key == "key_file" else "a certificate"
                problems.append(f"mqtt.{key}: {str(path)!r} is not {what} in PEM form")
    if config.complaints.hq_key is not None:
        try:
            load_complaint_key(config.complaints.hq_key)
        except ConfigError as e:
            problems.append(str(e))
    return problems


def load_complaint_key(path: Path) -> X25519PublicKey:
    """Head office's complaint public key from `complaints.hq_key`; ConfigError names what is wrong."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as e:
        raise ConfigError(f"complaints.hq_key: {str(path)!r} cannot be read ({e.strerror})") from None
    except (ValueError, TypeError):
        raise ConfigError(f"complaints.hq_key: {str(path)!r} is not a public key in PEM form") from None
    if not isinstance(key, X25519PublicKey):
        raise ConfigError(f"complaints.hq_key: {str(path)!r} is not an X25519 key "
                          "(make one with `handover-hq complaints key create`)")
    return key


def _main(argv: list[str]) -> int:
    """`python -m agent.config COMMAND FILE`: what the units need from the configuration, for
    systemd/handover-apply-config (they cannot read TOML themselves)."""
    # check-values: the values only, for install.sh, whose --root box is not the machine the paths name.
    commands = ("check", "check-values", "device-allow", "backup-interval", "unit-env")
    if len(argv) != 2 or argv[0] not in commands:
        print(f"usage: python -m agent.config {{{'|'.join(commands)}}} CONFIG", file=sys.stderr)
        return 2
    try:
        config = load_config(argv[1])
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 1
    command = argv[0]
    if command == "check":
        problems = check_files(config)
        for problem in problems:
            print(f"configuration error: {argv[1]}: {problem}", file=sys.stderr)
        if problems:
            return 1
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
    else:   # check, check-values
        print(f"{argv[1]}: ok (site {config.site.id}, simulate={str(config.simulate).lower()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
