"""The units as systemd itself reads them: `systemd-analyze verify` clean, exposure score <= 3.0.

Units are checked inside a throwaway root made by install.sh (so drop-ins and helper scripts are
the installed ones), with the host's own systemd units copied in for the targets they name and a
stub in place of the agent's console script (verify requires ExecStart= to be executable).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "systemd"
UNITS = ["handover-agent.service", "handover-backup.service", "handover-backup.timer",
         "handover-kiosk.service", "handover-usb@sdb1.service",
         "handover-apply-config.service", "handover-apply-config.path"]
MAX_EXPOSURE = 3.0

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")


def install_root(root: Path, config: Path | None = None) -> Path:
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow"):   # the box's own users and device groups
        shutil.copy2(Path("/etc") / name, root / "etc" / name)
    if config is not None:
        (root / "etc/handover-agent").mkdir()
        shutil.copy(config, root / "etc/handover-agent/handover.toml")
    subprocess.run([str(SYSTEMD / "install.sh"), "--root", str(root), "--no-venv", "--python", sys.executable],
                   check=True, capture_output=True, text=True)
    stub = root / "opt/handover-agent/venv/bin/handover-agent"
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    return root


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> Path:
    # The shipped example names real hardware, so the DeviceAllow drop-in is not empty.
    return install_root(tmp_path_factory.mktemp("box"), config=SYSTEMD / "handover.toml.example")


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("unit", UNITS)
def test_every_unit_verifies_without_a_word_on_stderr(box, unit):
    result = analyze("verify", "--man=no", f"--root={box}", unit)
    assert (result.returncode, result.stderr) == (0, "")


def test_verify_does_report_a_broken_unit(box, tmp_path):
    """Guards the test above: the same invocation does see a bad key and a missing program."""
    broken = tmp_path / "broken"
    shutil.copytree(box, broken, symlinks=True)
    unit = broken / "etc/systemd/system/handover-backup.service"
    unit.write_text(unit.read_text().replace("Nice=10", "Nice=10\nWatchdogSecs=5"))
    (broken / "opt/handover-agent/libexec/handover-usb-media").unlink()
    assert "Unknown key 'WatchdogSecs'" in analyze("verify", "--man=no", f"--root={broken}",
                                                    "handover-backup.service").stderr
    assert "handover-usb-media is not executable" in analyze("verify", "--man=no", f"--root={broken}",
                                                             "handover-usb@sdb1.service").stderr


def test_the_installed_drop_ins_carry_the_configuration(box):
    devices = (box / "etc/systemd/system/handover-agent.service.d/devices.conf").read_text()
    assert "DeviceAllow=/dev/fingerprint-door rw" in devices
    assert "DeviceAllow=/dev/gpiochip0 rw" in devices
    assert "OnUnitActiveSec=60min" in (box / "etc/systemd/system/handover-backup.timer.d/interval.conf").read_text()
    assert (box / "etc/handover-agent/units.env").read_text() == (
        "HANDOVER_SCREEN_URL=http://127.0.0.1:8080/\n"
        "HANDOVER_DEVICE_ID=branch-01-terminal\n"      # from the example's [device] id
        "HANDOVER_STATE_DIR=/var/lib/handover-agent\n")


def exposure(result: subprocess.CompletedProcess[str], unit: str) -> float:
    match = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match[1])


def test_agent_exposure_score_as_installed(box):
    # systemd 252 analyses unit files offline (no running manager needed) with --offline=true.
    result = analyze("security", "--offline=true", f"--root={box}", "--no-pager", "handover-agent.service")
    score = exposure(result, "handover-agent.service")
    assert score <= MAX_EXPOSURE, result.stdout


def test_agent_exposure_score_of_the_unit_file_alone(tmp_path):
    unit = tmp_path / "handover-agent.service"
    shutil.copy(SYSTEMD / "handover-agent.service", unit)
    result = analyze("security", "--offline=true", "--no-pager", str(unit))
    assert exposure(result, "handover-agent.service") <= MAX_EXPOSURE, result.stdout


def test_agent_unit_keeps_the_promised_settings():
    """What the deployment relies on, read back the way systemd parses it (last value wins)."""
    text = (SYSTEMD / "handover-agent.service").read_text()
    settings = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    assert settings["Type"] == "notify" and settings["WatchdogSec"] == "30"
    assert settings["Restart"] == "on-failure" and "StartLimitBurst" in settings
    assert settings["User"] == "handover" and settings["SupplementaryGroups"] == "dialout plugdev gpio audio video"
    assert settings["CapabilityBoundingSet"] == "" and settings["DevicePolicy"] == "closed"
    assert settings["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6 AF_NETLINK"
    assert settings["ExecStart"] == ("/opt/handover-agent/venv/bin/handover-agent run "
                                     "--config /etc/handover-agent/handover.toml")


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("cage") is None or shutil.which("Xwayland") is None,
                    reason="needs cage and xwayland (apt)")
def test_kiosk_launcher_shows_the_screen_url_in_chromium_under_cage():
    """The real launcher: cage (headless wlroots backend) + Chromium, as an unprivileged user
    like the unit's handover-kiosk, must load the configured screen address."""
    import http.server
    import os
    import signal
    import tempfile
    import threading
    import time

    requests: list[str] = []

    class Screen(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            requests.append(self.path)
            body = "<html><body>交接终端</body></html>".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Screen)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Not pytest's tmp_path: its parent is private to root, and the browser runs as nobody.
    base = Path(tempfile.mkdtemp(prefix="handover-kiosk-"))
    base.chmod(0o755)
    # The launcher as install.sh lays it out (root-owned, 0755, readable by all): the checkout may
    # live where nobody cannot read it (root clones into /root, mode 0700).
    launcher = base / "libexec" / "handover-kiosk"
    launcher.parent.mkdir(mode=0o755)
    shutil.copyfile(SYSTEMD / "handover-kiosk", launcher)
    launcher.chmod(0o755)
    runtime, xdg = base / "run", base / "xdg"
    for d in (runtime, xdg):
        d.mkdir(mode=0o700)
        shutil.chown(d, "nobody")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(runtime), "XDG_RUNTIME_DIR": str(xdg),
           "WLR_BACKENDS": "headless", "WLR_LIBINPUT_NO_DEVICES": "1", "RUNTIME_DIRECTORY": str(runtime),
           "HANDOVER_SCREEN_URL": f"http://127.0.0.1:{server.server_port}/"}
    log = base / "kiosk.log"       # cage's and Chromium's own words, for when it does not come up
    with open(log, "wb") as out:
        kiosk = subprocess.Popen(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", str(launcher)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "/" not in requests and time.monotonic() < deadline and kiosk.poll() is None:
            time.sleep(0.2)
        assert "/" in requests, (f"the kiosk never loaded the screen (exit code {kiosk.poll()}):\n"
                                 + log.read_text(errors="replace")[-3000:])
        assert (runtime / "chromium").is_dir()          # the profile lives in the tmpfs, not on disk
    finally:
        stop_group(kiosk)
        server.shutdown()
        shutil.rmtree(base, ignore_errors=True)


def stop_group(proc: subprocess.Popen) -> None:
    """Stop the launcher and everything it started (cage, Chromium's zygote and renderers)."""
    import os
    import signal

    import time

    for sig in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + 10
        try:
            os.killpg(proc.pid, sig)
            while time.monotonic() < deadline:     # until no process of the group is left
                proc.poll()
                os.killpg(proc.pid, 0)
                time.sleep(0.1)
        except ProcessLookupError:
            proc.wait()
            return


@pytest.fixture
def usb_stick(tmp_path):
    """A real block device with a filesystem and a bundle on it: an ext4 image on a loop device."""
    image = tmp_path / "stick.img"
    with open(image, "wb") as f:
        f.truncate(8 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-d", str(make_stick_content(tmp_path)), str(image)], check=True)
    loop = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True)
    if loop.returncode != 0:
        pytest.skip(f"no loop device here: {loop.stderr.strip()}")
    device = loop.stdout.strip()
    yield device
    subprocess.run(["losetup", "-d", device], check=True)


def make_stick_content(tmp_path: Path) -> Path:
    content = tmp_path / "content"
    content.mkdir()
    (content / "tasks.htb").write_bytes(b"bundle")
    tool = content / "run.sh"
    tool.write_text("#!/bin/sh\necho ran\n")
    tool.chmod(0o755)
    return content


def media(action: str, device: str, tmp_path: Path, provisioned: bool) -> subprocess.CompletedProcess[str]:
    marker = tmp_path / "provisioning" / "config.toml"      # what usb-import itself tests
    if provisioned:
        marker.parent.mkdir(exist_ok=True)
        marker.write_text('[site]\nid = "b1"\n')
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HANDOVER_MEDIA_DIR": str(tmp_path / "media"),
           "HANDOVER_PROVISIONED_FILE": str(marker), "HANDOVER_USER": "nobody"}
    return subprocess.run([str(SYSTEMD / "handover-usb-media"), action, device], env=env,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("provisioned, mode", [(True, "ro"), (False, "rw")])
def test_usb_stick_is_mounted_without_exec_devices_or_setuid(usb_stick, tmp_path, provisioned, mode):
    name = Path(usb_stick).name
    mounted = media("mount", name, tmp_path, provisioned)
    target = tmp_path / "media" / name
    try:
        assert mounted.returncode == 0, mounted.stderr
        options = subprocess.run(["findmnt", "-n", "-o", "OPTIONS", str(target)],
                                 capture_output=True, text=True).stdout.split(",")
        assert {mode, "nosuid", "nodev", "noexec"} <= set(options)
        assert (target / "tasks.htb").read_bytes() == b"bundle"
        with pytest.raises(PermissionError):                  # noexec, even for root
            subprocess.run([str(target / "run.sh")], capture_output=True)
    finally:
        unmounted = media("unmount", name, tmp_path, provisioned)
    assert unmounted.returncode == 0
    assert not target.exists()


def test_usb_helper_refuses_a_device_name_that_is_a_path(tmp_path):
    result = media("mount", "../sda", tmp_path, provisioned=True)
    assert result.returncode == 2 and "bad device name '../sda'" in result.stderr
    assert not (tmp_path / "media").exists()
