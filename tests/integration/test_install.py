"""install.sh / uninstall.sh into a throwaway root: idempotent, private directories, clean removal."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "systemd" / "install.sh"
UNINSTALL = ROOT / "systemd" / "uninstall.sh"
# Device groups the box may lack (Debian has no gpio group); install adds them and leaves them.
SHARED_GROUPS = ("gpio", "render", "input")
# Staging: the configuration is checked and applied with a Python that has the agent's libraries.
STAGE = ("--no-venv", "--python", sys.executable)

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("systemd-sysusers") is None,
                                reason="install.sh creates users and owners: needs root and systemd-sysusers")


def run(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its type, mode, owner and content (or link target)."""
    tree = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            what = os.readlink(path)
        elif path.is_file():
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = "dir"
        tree[str(path.relative_to(root))] = (oct(st.st_mode), st.st_uid, st.st_gid, what)
    return tree


@pytest.fixture
def box(tmp_path) -> Path:
    root = tmp_path / "box"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow"):
        shutil.copy2(Path("/etc") / name, root / "etc" / name)
    return root


def entry(root: Path, db: str, name: str) -> list[str]:
    for line in (root / "etc" / db).read_text().splitlines():
        if line.split(":")[0] == name:
            return line.split(":")
    raise AssertionError(f"{name} not in {db}")


def test_install_twice_gives_the_same_tree_without_errors(box):
    first = run(INSTALL, "--root", box, *STAGE)
    assert first.returncode == 0, first.stderr
    after_first = snapshot(box)
    second = run(INSTALL, "--root", box, *STAGE)
    assert (second.returncode, second.stderr) == (0, "")
    assert snapshot(box) == after_first

    uid = int(entry(box, "passwd", "handover")[2])
    state = (box / "var/lib/handover-agent").stat()
    config = (box / "etc/handover-agent").stat()
    assert (oct(state.st_mode & 0o777), state.st_uid) == ("0o700", uid)
    assert (oct(config.st_mode & 0o777), config.st_uid) == ("0o750", uid)
    assert entry(box, "passwd", "handover")[6] == "/usr/sbin/nologin"
    for group in ("dialout", "plugdev", "gpio", "audio", "video"):
        assert "handover" in entry(box, "group", group)[3].split(","), group
    units = box / "etc/systemd/system"
    assert (units / "multi-user.target.wants/handover-agent.service").is_symlink()
    assert (units / "timers.target.wants/handover-backup.timer").is_symlink()
    assert os.access(box / "opt/handover-agent/libexec/handover-usb-media", os.X_OK)
    assert (box / "etc/udev/rules.d/99-handover-devices.rules").is_file()
    # No handover.toml: that comes from provisioning; the example is there to start from.
    assert not (box / "etc/handover-agent/handover.toml").exists()
    assert (box / "etc/handover-agent/handover.toml.example").is_file()


def test_install_keeps_the_boxs_configuration_and_applies_it(box):
    assert run(INSTALL, "--root", box, *STAGE).returncode == 0
    mine = box / "etc/handover-agent/handover.toml"
    mine.write_text('[site]\nid = "b9"\n[devices.door]\ndriver = "serial-relay"\nport = "/dev/ttyUSB3"\n'
                    '[backup]\ninterval_minutes = 15\n[screen]\nport = 8181\n')
    before = mine.read_bytes()
    assert run(INSTALL, "--root", box, *STAGE).returncode == 0
    assert mine.read_bytes() == before
    units = box / "etc/systemd/system"
    assert "DeviceAllow=/dev/ttyUSB3 rw" in (units / "handover-agent.service.d/devices.conf").read_text()
    assert "OnUnitActiveSec=15min" in (units / "handover-backup.timer.d/interval.conf").read_text()
    assert "http://127.0.0.1:8181/" in (box / "etc/handover-agent/units.env").read_text()


def test_install_refuses_a_bad_configuration_before_changing_anything(box):
    (box / "etc/handover-agent").mkdir()
    (box / "etc/handover-agent/handover.toml").write_text('[site]\nid = "b9"\n[devices.door]\npinn = 4\n')
    before = snapshot(box)
    result = run(INSTALL, "--root", box, *STAGE)
    assert result.returncode != 0
    assert "devices.door.pinn: unknown key" in result.stderr
    assert snapshot(box) == before


def test_staging_with_a_python_that_lacks_the_agents_libraries_says_so_and_changes_nothing(box, tmp_path):
    """A fresh box's python3 has none of the agent's libraries (no cryptography): install.sh must say
    which Python to give instead of failing half-way with a traceback."""
    (box / "etc/handover-agent").mkdir()
    (box / "etc/handover-agent/handover.toml").write_text('[site]\nid = "b9"\n')
    bare = tmp_path / "bare-python"            # the interpreter without any site-packages
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    bare.chmod(0o755)
    assert subprocess.run([bare, "-c", "import cryptography"], capture_output=True).returncode != 0
    before = snapshot(box)
    result = run(INSTALL, "--root", box, "--no-venv", "--python", bare)
    assert result.returncode == 1
    assert "cannot run the agent's code" in result.stderr and "--python" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(box) == before
    # the same root with the agent's Python checks the configuration and installs
    assert run(INSTALL, "--root", box, *STAGE).returncode == 0
    assert "HANDOVER_DEVICE_ID=b9-terminal" in (box / "etc/handover-agent/units.env").read_text()


def test_install_refuses_unknown_options_and_a_missing_root(box, tmp_path):
    before = snapshot(box)
    result = run(INSTALL, "--root", box, *STAGE, "--fast")
    assert result.returncode == 2 and "unknown option '--fast'" in result.stderr
    result = run(INSTALL, "--root", tmp_path / "nowhere", *STAGE)
    assert result.returncode == 1 and "does not exist" in result.stderr
    result = run(INSTALL, "--root", box)
    assert result.returncode == 1 and "--no-venv" in result.stderr
    assert snapshot(box) == before


def comparable(tree: dict[str, tuple]) -> dict[str, tuple]:
    """The tree, minus the account databases' backup copies the shadow tools leave behind and the
    group files (checked line by line: the shared device groups stay)."""
    return {p: v for p, v in tree.items()
            if p not in ("etc/passwd-", "etc/group-", "etc/shadow-", "etc/gshadow-", "etc/.pwd.lock")
            and p not in ("etc/group", "etc/gshadow")}


def test_uninstall_keeps_records_and_purge_removes_everything_install_added(box):
    before = snapshot(box)
    group_before = (box / "etc/group").read_text().splitlines()
    assert run(INSTALL, "--root", box, *STAGE).returncode == 0
    (box / "var/lib/handover-agent/journal.db").write_bytes(b"records")

    result = run(UNINSTALL, "--root", box)
    assert result.returncode == 0, result.stderr
    assert (box / "var/lib/handover-agent/journal.db").read_bytes() == b"records"
    assert not (box / "etc/systemd/system/handover-agent.service").exists()
    assert not (box / "opt").exists()

    result = run(UNINSTALL, "--root", box, "--purge")
    assert result.returncode == 0, result.stderr
    assert comparable(snapshot(box)) == comparable(before)
    group_after = (box / "etc/group").read_text().splitlines()
    added = [line for line in group_after if line not in group_before]
    assert {line.split(":")[0] for line in added} <= set(SHARED_GROUPS)
    assert all(line.split(":")[3] == "" for line in added)    # no member left behind
    assert "handover" not in (box / "etc/passwd").read_text()


def test_unprovisioned_box_leaves_the_device_id_to_the_usb_unit(box):
    assert run(INSTALL, "--root", box, *STAGE).returncode == 0
    env = (box / "etc/handover-agent/units.env").read_text()
    assert "HANDOVER_DEVICE_ID" not in env       # handover-usb@.service falls back to ht-<machine id>
    assert "Environment=HANDOVER_DEVICE_ID=ht-%m" in (box / "etc/systemd/system/handover-usb@.service").read_text()
