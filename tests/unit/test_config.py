"""The configuration file: a good file reads into typed values; every bad file names what is wrong."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config
from flows.model import SiteType

EXAMPLE = Path(__file__).resolve().parents[2] / "systemd" / "handover.toml.example"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "handover.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    return str(e.value)


def test_the_shipped_example_reads_into_typed_values():
    c = load_config(EXAMPLE)
    assert c.site.id == "branch-01" and c.site.type is SiteType.BRANCH
    assert c.simulate is False
    assert c.paths.journal_path == Path("/var/lib/handover-agent/journal.db")
    assert c.paths.backups_dir == Path("/var/lib/handover-agent/backups")
    assert c.devices.fingerprint_door.port == "/dev/fingerprint-door"
    assert c.devices.fingerprint_door.address == 0xFFFFFFFF
    assert c.devices.fingerprint_counter is not None and c.devices.fingerprint_counter.station == "counter"
    assert c.devices.ble.dwell_seconds == 3.0 and isinstance(c.devices.ble.dwell_seconds, float)
    assert c.mqtt.enabled and c.mqtt.port == 8883
    assert c.screen.url == "http://127.0.0.1:8080/"
    assert c.device_paths() == ["/dev/fingerprint-door", "/dev/fingerprint-counter", "/dev/video0",
                                "/dev/ttyAMA0", "/dev/gpiochip0"]
    assert c.device_allow() == ["/dev/fingerprint-door rw", "/dev/fingerprint-counter rw", "/dev/video0 rw",
                                "/dev/ttyAMA0 rw", "/dev/gpiochip0 rw", "char-ttyUSB rw", "char-ttyACM rw",
                                "char-video4linux rw", "char-alsa rw"]


def test_no_file_or_a_missing_file_means_simulation_with_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for c in (load_config(None), load_config(tmp_path / "absent.toml")):
        assert c.simulate and c.source is None
        assert c.site.timezone == "Asia/Shanghai" and c.site.min_escorts == 2
        assert c.screen.host == "127.0.0.1" and c.screen.language == "zh-CN"
        assert c.paths.state_dir == tmp_path / "var"
        assert c.device_paths() == []


def test_config_is_frozen():
    c = load_config(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.site.id = "x"  # type: ignore[misc]


def test_a_file_without_hardware_drivers_simulates_and_one_with_them_does_not(tmp_path):
    assert load_config(write(tmp_path, '[site]\nid = "b7"\n')).simulate
    c = load_config(write(tmp_path, '[site]\nid = "b7"\n[devices.door]\ndriver = "gpio"\npin = 4\n'))
    assert not c.simulate and c.paths.state_dir == Path("/var/lib/handover-agent")
    assert c.device_allow() == ["/dev/gpiochip0 rw"]
    assert c.as_simulation().simulate and c.as_simulation().device_allow() == []


def test_relative_state_dir_is_taken_from_the_config_files_folder(tmp_path):
    c = load_config(write(tmp_path, '[site]\nid = "b7"\n[paths]\nstate_dir = "data"\n'))
    assert c.paths.state_dir == tmp_path / "data"
    assert c.device.id == "b7-terminal"


@pytest.mark.parametrize("text, message", [
    ('[site]\nid = "b"\n[devices.door]\npinn = 4\n',
     "devices.door.pinn: unknown key; allowed keys in [devices.door]: driver, pin, active_high, port"),
    ('[site]\nid = "b"\n[sight]\nid = "x"\n',
     "(top level).sight: unknown key; allowed keys in [(top level)]: site, device, paths, screen, devices, mqtt, backup"),
    ('[site]\nid = "b"\n[devices.scanner]\ndriver = "x"\n',
     "devices.scanner: unknown key; allowed keys in [devices]: fingerprint_door, fingerprint_counter, cards"),
    ('[site]\nid = "b"\nmin_escorts = "two"\n',
     "site.min_escorts: 'two' is not allowed; expected an integer from 2 to 10"),
    ('[site]\nid = "b"\nmin_escorts = 1\n',
     "site.min_escorts: 1 is not allowed; expected an integer from 2 to 10"),
    ('[site]\nid = "b"\nallow_uid_only_tags = "yes"\n',
     "site.allow_uid_only_tags: 'yes' is not allowed; expected true or false"),
    ('[site]\nid = "b"\ntype = "atm"\n',
     "site.type: 'atm' is not allowed; expected one of \"branch\", \"vault\""),
    ('[site]\nid = "b"\n[devices.cards]\ndriver = "nfc"\n',
     "devices.cards.driver: 'nfc' is not allowed; expected one of \"simulator\", \"pcsc\""),
    ('[site]\nid = "b"\n[screen]\nport = 70000\n',
     "screen.port: 70000 is not allowed; expected an integer from 1 to 65535"),
    ('[site]\nid = "b"\n[mqtt]\nport = 0\n',
     "mqtt.port: 0 is not allowed; expected an integer from 1 to 65535"),
    ('[site]\nid = "b"\n[screen]\nhost = "0.0.0.0"\n',
     "screen.host: '0.0.0.0' is not a loopback address; the screen must be reachable only from the device"),
    ('[site]\nid = "b"\ntimezone = "Asia/Beijing"\n',
     "site.timezone: 'Asia/Beijing' is not a known IANA time zone"),
    ('[site]\nid = "b"\n[devices.fingerprint_door]\ndriver = "uart"\nport = "/dev/ttyUSB0"\nbaudrate = 10000\n',
     "devices.fingerprint_door.baudrate: 10000 is not allowed; expected 9600 x N for N from 1 to 12"),
    ('[site]\nid = "b"\n[devices.fingerprint_door]\ndriver = "uart"\n',
     'devices.fingerprint_door.port: required when devices.fingerprint_door.driver = "uart"'),
    ('[site]\nid = "b"\n[devices.fingerprint_counter]\ndriver = "uart"\nport = "COM3"\n',
     "devices.fingerprint_counter.port: 'COM3' is not allowed; expected a device path"),
    ('[site]\nid = "b"\n[devices.fingerprint_door]\naddress = "0xZZ"\n',
     "devices.fingerprint_door.address: '0xZZ' is not allowed; expected an integer or hex string"),
    ('[mqtt]\nenabled = true\n',
     "site.id: required (a non-empty string)"),
    ('[site]\nid = "b"\n[mqtt]\nenabled = true\nhost = "hq"\n',
     "mqtt.ca_file: required when mqtt.enabled = true"),
    ('[site]\nid = "b"\n[mqtt]\ntopic_prefix = "ht/#"\n',
     "mqtt.topic_prefix: 'ht/#' is not allowed"),
    ('[site]\nid = "b"\n[devices.door]\ndriver = "gpio"\n',
     'devices.door.pin: required when devices.door.driver = "gpio"'),
    ('[site]\nid = "b"\n[backup]\nkeep = 0\n',
     "backup.keep: 0 is not allowed; expected an integer from 1 to 10000"),
    ('site = "b"\n',
     "site: must be a table ([site]), got 'b'"),
])
def test_each_bad_file_names_the_key_the_value_and_what_is_allowed(tmp_path, text, message):
    assert message in error_of(tmp_path, text)


def test_a_toml_syntax_error_names_the_file_and_line(tmp_path):
    msg = error_of(tmp_path, '[site]\nid = "b"\n\n[screen]\nport = = 8080\n')
    assert msg.startswith(str(tmp_path / "handover.toml"))
    assert "not valid TOML" in msg and "line 5" in msg


def test_remote_screen_is_allowed_only_when_asked_for(tmp_path):
    c = load_config(write(tmp_path, '[site]\nid = "b"\n[screen]\nhost = "::1"\n'))
    assert c.screen.url == "http://[::1]:8080/"
    c = load_config(write(tmp_path, '[site]\nid = "b"\n[screen]\nhost = "0.0.0.0"\nallow_remote = true\n'))
    assert c.screen.host == "0.0.0.0"


DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"
SECTIONS = ["site", "device", "paths", "screen", "mqtt", "backup", "complaints"] + [
    f"devices.{d}" for d in ("fingerprint_door", "fingerprint_counter", "cards", "ble", "camera",
                             "voice", "printer", "door")]


@pytest.mark.parametrize("section", SECTIONS)
def test_every_key_the_loader_allows_is_documented(tmp_path, section):
    # The loader's own error message lists the allowed keys of the section.
    text = '[site]\nid = "b"\n' + ("" if section == "site" else f"[{section}]\n") + "no_such_key = 1\n"
    msg = error_of(tmp_path, text)
    allowed = msg.split(f"allowed keys in [{section}]: ")[1].split(", ")
    doc = DOC.read_text(encoding="utf-8")
    heading = f"`[{section}]`"
    assert heading in doc, heading
    part = doc.split(heading, 1)[1].split("\n#", 1)[0]
    missing = [k for k in allowed if f"`{k}`" not in part]
    assert not missing, f"{section}: {missing} not documented in docs/config.md"


def test_beacon_patterns_are_read_and_checked_by_name(tmp_path):
    good = tmp_path / "ok.toml"
    good.write_text("""
[site]
id = "BR-1"
[devices.ble]
driver = "bleak"
[[devices.ble.patterns]]
identity = "truck-7"
local_name = "CIT-TRUCK-0?7"
[[devices.ble.patterns]]
identity = "truck-8"
company_id = 0x0059
data_prefix = "0a0b"
""", encoding="utf-8")
    patterns = load_config(good).devices.ble.patterns
    assert [(p.identity, p.local_name, p.company_id, p.data_prefix) for p in patterns] == [
        ("truck-7", "CIT-TRUCK-0?7", None, b""), ("truck-8", None, 0x59, b"\x0a\x0b")]
    for body, message in [
        ('identity = "t"', "devices.ble.patterns[0]: needs local_name or company_id"),
        ('identity = "t"\nlocal_name = "("', "devices.ble.patterns[0].local_name: '(' is not a regular expression"),
        ('identity = "t"\ncompany_id = 1\ndata_prefix = "zz"', "devices.ble.patterns[0].data_prefix"),
        ('identity = "t"\ncompany_id = 1\ncolour = "red"', "devices.ble.patterns[0].colour: unknown key"),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(f'[site]\nid = "BR-1"\n[[devices.ble.patterns]]\n{body}\n', encoding="utf-8")
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(bad)


def test_complaint_rules_per_bank_are_read_and_checked_by_name(tmp_path):
    good = tmp_path / "ok.toml"
    good.write_text('[site]\nid = "BR-1"\n[complaints.deadlines]\ncomplex_reply = 10\nmax_months = 2\n'
                    '[complaints.calendar]\nholidays = ["2027-01-01"]\nworkdays = ["2027-02-06"]\n', encoding="utf-8")
    c = load_config(good).complaints
    assert c.deadlines == {"complex_reply": 10, "max_months": 2}
    assert c.holidays == ("2027-01-01",) and c.workdays == ("2027-02-06",)
    for body, message in [
        ("[complaints.deadlines]\ngeneral_reply = -1", "complaints.deadlines: complaint deadline setting general_reply"),
        ("[complaints.deadlines]\nreply_in_a_hurry = 1", "complaints.deadlines.reply_in_a_hurry: unknown key"),
        ('[complaints.calendar]\nholidays = ["next tuesday"]', "complaints.calendar.holidays: 'next tuesday' is not an ISO date"),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(f'[site]\nid = "BR-1"\n{body}\n', encoding="utf-8")
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(bad)


def test_complaint_hours_escalation_and_published_contacts_are_read_and_checked_by_name(tmp_path):
    good = tmp_path / "ok.toml"
    good.write_text('[site]\nid = "BR-1"\n[complaints]\nhotline = "95528"\nappeal_body = "12378"\n'
                    '[complaints.hours]\npass_on = 2\nopens = "08:30"\n[complaints.escalation]\ngroup_min_people = 5\n',
                    encoding="utf-8")
    c = load_config(good).complaints
    assert (c.hotline, c.supervision_phone, c.appeal_body) == ("95528", "", "12378")
    assert c.hours == {"pass_on": 2, "opens": "08:30"} and c.escalation == {"group_min_people": 5}
    for body, message in [
        ("[complaints.hours]\npass_on = 0", "complaints.hours: complaint hour setting pass_on"),
        ('[complaints.hours]\ncloses = "08:00"', "complaints.hours: complaint hour setting closes must be after opens"),
        ("[complaints.hours]\nquickly = 1", "complaints.hours.quickly: unknown key"),
        ("[complaints.escalation]\namount_over_yuan = -1", "complaints.escalation: complaint escalation setting"),
        ("[complaints]\nhotline = 95528", "complaints.hotline"),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(f'[site]\nid = "BR-1"\n{body}\n', encoding="utf-8")
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(bad)
