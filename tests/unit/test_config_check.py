"""`python -m agent.config check` catches what used to pass and fail later (issue 19 item 12), and the
rules for head office's settings are the file's rules (issue 13 item 4)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import (ConfigError, ScreenConfig, SiteConfig, apply_settings, load_config, remote_keys, rules_of,
                          settings_view)

ROOT = Path(__file__).resolve().parents[2]


def check(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "handover.toml"
    path.write_text(text, encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "agent.config", "check", str(path)], cwd=ROOT,
                          capture_output=True, text=True)


@pytest.mark.parametrize("bad", ["dev+1", "dev#1", "dev/1", "dev 1", ""])
def test_a_device_id_that_cannot_be_a_topic_level_is_refused_naming_the_key(tmp_path, bad):
    r = check(tmp_path, f'[site]\nid = "b"\n[device]\nid = "{bad}"\n')
    assert r.returncode == 1 and "device.id:" in r.stderr, r.stderr


def test_a_site_id_with_a_wildcard_is_refused(tmp_path):
    r = check(tmp_path, '[site]\nid = "b/#"\n')
    assert r.returncode == 1 and "site.id:" in r.stderr


def _mqtt(tmp_path: Path, ca: str, cert: str, key: str) -> str:
    return (f'[site]\nid = "b"\n[paths]\nstate_dir = "{tmp_path / "state"}"\n[mqtt]\nenabled = true\nhost = "hq"\n'
            f'ca_file = "{ca}"\ncert_file = "{cert}"\nkey_file = "{key}"\n')


def test_missing_or_non_pem_certificate_files_are_named(tmp_path):
    (tmp_path / "ca.crt").write_text("hello")
    r = check(tmp_path, _mqtt(tmp_path, tmp_path / "ca.crt", tmp_path / "absent.crt", tmp_path / "absent.key"))
    assert r.returncode == 1
    assert "mqtt.ca_file:" in r.stderr and "not a certificate in PEM form" in r.stderr
    assert "mqtt.cert_file:" in r.stderr and "cannot be read" in r.stderr
    assert "mqtt.key_file:" in r.stderr


def test_good_certificate_files_pass(tmp_path):
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from broker import Pki
    pki = Pki(tmp_path / "pki")
    cert, key = pki.issue("dev-1")
    r = check(tmp_path, _mqtt(tmp_path, pki.ca_file, cert, key))
    assert r.returncode == 0, r.stderr


def test_a_state_dir_that_is_a_file_is_named(tmp_path):
    (tmp_path / "state").write_text("oops")
    r = check(tmp_path, f'[site]\nid = "b"\n[paths]\nstate_dir = "{tmp_path / "state"}"\n')
    assert r.returncode == 1 and "paths.state_dir:" in r.stderr and "is a file" in r.stderr


@pytest.mark.parametrize("key, value", [("general_reply", 1000000), ("complex_reply", 67), ("max_months", 10**9)])
def test_absurd_complaint_deadlines_are_refused_naming_the_key(tmp_path, key, value):
    r = check(tmp_path, f'[site]\nid = "b"\n[complaints.deadlines]\n{key} = {value}\n')
    assert r.returncode == 1 and key in r.stderr and "at most" in r.stderr, r.stderr


def test_every_default_is_written_once_on_its_field():
    c = load_config(None)
    for cls, section in ((SiteConfig, c.site), (ScreenConfig, c.screen)):
        for key, (default, _) in rules_of(cls).items():
            assert getattr(section, key) == default, key


def test_head_office_settings_use_the_files_rules():
    c = load_config(None)
    new, effect = apply_settings(c, {"screen.idle_timeout_seconds": 60, "site.max_failed_attempts": 3})
    assert new.screen.idle_timeout_seconds == 60 and new.site.max_failed_attempts == 3
    assert effect == {"screen.idle_timeout_seconds": "now", "site.max_failed_attempts": "next_handover"}
    assert settings_view(new)["screen.idle_timeout_seconds"] == 60 and set(settings_view(new)) == set(remote_keys())
    for bad, message in [({"screen.idle_timeout_seconds": 3601}, "screen.idle_timeout_seconds: 3601 is not allowed"),
                         ({"screen.port": 1}, "screen.port: may not be set from head office"),
                         ({"site.min_escorts": True}, "site.min_escorts: true is not allowed"),
                         ({}, "settings: must be")]:
        with pytest.raises(ConfigError, match=message):
            apply_settings(c, bad)
