"""`./dev demo`: both sides of the system on one laptop, bound to 127.0.0.1.

- a local mosquitto on a free port (mutual TLS, the ACL of docs/mqtt.md), when the binary is installed;
- head office: `handover-hq serve --http` with an embedded SQLite database, the monitoring centre's page and
  one login per role, whose passwords are generated for this run and printed;
- the terminal: `handover-agent run --simulate` with the sample day, syncing to that broker.

Keys and certificates come from `handover-hq` (keys create, device add, issue-cert, issue-hq-cert,
issue-broker-cert, complaints key create), as a bank's technician makes them. Head office starts fresh on
every run (a new CA, database and passwords under <state>/hq); the terminal keeps its journal in <state>, and
head office takes all of it in again (it asks for what it has not seen). Without mosquitto the terminal runs
alone, as before. Ctrl-C (or SIGTERM) stops the terminal, then head office, then the broker; each child also
dies with this process (PR_SET_PDEATHSIG), so none is left behind.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import io
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from agent.config import DEFAULT_SITE_ID
from agent.sample import DEMO_SITE_NAME, SITE_NAMES, VAULT
from hq import cli as hq_cli
from hq.db import Database
from hq.web.auth import ROLES, Auth
from offline.provisioning import identity_document
from protocol.keys import HQ_IDENTITY, DeviceKeys
from protocol.messages import broker_acl

ROOT = Path(__file__).resolve().parents[1]
DEVICE = f"{DEFAULT_SITE_ID}-terminal"      # the id a configuration without [device] gives the demo terminal
PREFIX = "ht/v1"
DEMO_TZ = "Asia/Shanghai"                   # the terminal's default time zone: the dispatch's times are local
EXAMPLE_BEACON = "ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:100:31"     # not a sample truck's
START_TIMEOUT = 90.0                        # a busy laptop's first start (OpenCV, espeak) can be slow
NO_BROKER = ("mosquitto is not installed, so head office cannot run beside the terminal: install it with\n"
             "  sudo apt-get install --no-install-recommends mosquitto\n"
             "and run ./dev demo again. Running the terminal alone.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # a child must not outlive the demo, even when the demo itself is killed (1 = PR_SET_PDEATHSIG)
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class Child:
    """One process of the demo, its output in a log file under <state>/logs."""

    def __init__(self, name: str, argv: list[str], log: Path):
        self.name, self.log = name, log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            # its own session: Ctrl-C reaches the demo alone, which stops the children in order
            self.proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_die_with_parent)

    def tail(self, lines: int = 20) -> str:
        try:
            return "".join(self.log.read_text("utf-8", "replace").splitlines(True)[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"{self.name} did not stop within {timeout:.0f} s: killed", file=sys.stderr)
                self.proc.kill()
                self.proc.wait()


class Stop(Exception):
    """SIGINT or SIGTERM arrived."""


def _on_signal(signum, frame):
    raise Stop()


def wait_until_up(child: Child, check, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited ({child.proc.returncode}) before {what}; "
                               f"the end of {child.log}:\n{child.tail()}")
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{child.name}: no {what} within {START_TIMEOUT:.0f} s; the end of {child.log}:\n{child.tail()}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def hq_command(*argv: str) -> None:
    """`handover-hq ARGV` in this process; what it prints goes to the log, a failure stops the demo."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = hq_cli.main([str(a) for a in argv])
    if code:
        raise RuntimeError(f"handover-hq {' '.join(map(str, argv))} failed: {out.getvalue().strip()}")


def make_pki(hq_dir: Path, state: Path) -> dict[str, Path]:
    """Head office's keys, the broker's, head office's and the terminal's certificates, the complaint and
    records keys."""
    keys = hq_dir / "keys"
    hq_command("keys", "create", "--keys", keys)
    hq_command("complaints", "key", "create", "--keys", keys)
    hq_command("records", "key", "create", "--keys", keys)
    files = {"ca": keys / "ca.crt.pem", "complaint_pub": keys / "complaint.pub.pem", "keys": keys,
             "records": keys / "records.pem"}
    for name in ("broker", "hq", "device"):
        files[name] = hq_dir / f"{name}.crt"
        files[name + "_key"] = hq_dir / f"{name}.key"
    hq_command("issue-broker-cert", "--keys", keys, "--host", "127.0.0.1", "--host", "localhost",
               "--out", files["broker"], "--key-out", files["broker_key"])
    hq_command("issue-hq-cert", "--keys", keys, "--out", files["hq"], "--key-out", files["hq_key"])
    # what a new terminal writes on the provisioning stick (its private keys stay in its state folder):
    # head office signs its request, and packs the schedule's USB bundles to its key
    files["identities"] = hq_dir / "identities"
    files["identities"].mkdir()
    identity = files["identities"] / f"identity-{DEVICE}.json"
    identity.write_text(json.dumps(identity_document(DeviceKeys.load_or_create(state / "keys", DEVICE),
                                                     datetime.now(timezone.utc))))
    hq_command("device", "add", "--keys", keys, DEVICE)
    hq_command("issue-cert", "--keys", keys, "--csr", identity, "--out", files["device"])
    files["device_key"] = state / "keys" / "mqtt_client.pem"
    # the door faces go up sealed to head office's records key: its public half is installed with the device
    (state / "keys" / "hq_records.pem").write_bytes((keys / "records.pub.pem").read_bytes())
    return files


def broker_conf(folder: Path, port: int, pki: dict[str, Path]) -> Path:
    (folder / "data").mkdir(parents=True)
    (folder / "acl").write_text(broker_acl(PREFIX, HQ_IDENTITY))
    conf = folder / "mosquitto.conf"
    # TLS only, the certificate's CN as the username (docs/mqtt.md, "Setting up a bank's broker"), and
    # nothing queued for an offline session dropped
    conf.write_text("\n".join([
        # run as whoever runs the demo (as root mosquitto would become `mosquitto`, who cannot read the keys)
        f"user {pwd.getpwuid(os.getuid()).pw_name}", "per_listener_settings false", "allow_anonymous false",
        "persistence true", f"persistence_location {folder / 'data'}/",
        "autosave_interval 1", "autosave_on_changes true", "max_queued_messages 0",
        "log_dest stderr", "log_type error", "log_type warning", "log_type notice",      # to <state>/logs
        f"acl_file {folder / 'acl'}",
        f"listener {port} 127.0.0.1", f"cafile {pki['ca']}", f"certfile {pki['broker']}",
        f"keyfile {pki['broker_key']}", "require_certificate true", "use_identity_as_username true", ""]))
    return conf


def agent_conf(path: Path, state: Path, mqtt_port: int, pki: dict[str, Path]) -> Path:
    values = {"site": {"id": DEFAULT_SITE_ID}, "device": {"id": DEVICE, "simulate": True},
              "paths": {"state_dir": state},
              "mqtt": {"enabled": True, "host": "127.0.0.1", "port": mqtt_port, "ca_file": pki["ca"],
                       "cert_file": pki["device"], "key_file": pki["device_key"]},
              "complaints": {"hq_key": pki["complaint_pub"]}}
    path.write_text("".join(f"[{section}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items())
                            for section, keys in values.items()), encoding="utf-8")
    return path


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int) else json.dumps(str(value), ensure_ascii=False)


def schedule_files(hq_dir: Path) -> Path:
    """Registers the sample day's sites at head office (what the schedule is checked against) and writes an
    example dispatch for today, a run from the vault to the demo branch, for the admin to upload."""
    sites = hq_dir / "sites.csv"
    sites.write_text("site_id,name,type\n" + "".join(
        f"{site},{name},{'vault' if site == VAULT else 'branch'}\n"
        for site, name in {**SITE_NAMES, DEFAULT_SITE_ID: DEMO_SITE_NAME}.items()), "utf-8")
    hq_command("schedule", "sites", sites, "--db", hq_dir / "hq.db")
    now = datetime.now(ZoneInfo(DEMO_TZ)).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=5)                     # the truck may arrive now
    if (start - timedelta(minutes=30)).date() != now.date() or (start + timedelta(minutes=60)).date() != now.date():
        start = now.replace(hour=12, minute=0)             # near midnight: a window today all the same
    w = lambda minutes: (start + timedelta(minutes=minutes)).strftime("%H:%M")      # noqa: E731
    run = f"{start:%Y-%m-%d},D01,{{}},{{}},delivery,{{}},{{}},沪A·D0001,{EXAMPLE_BEACON},E03;E04,{{}}"
    dispatch = hq_dir / "dispatch-example.csv"
    dispatch.write_text("\r\n".join([
        "date,route,stop,site,kind,window_start,window_end,plate,beacon,escorts,boxes,confirmers",
        run.format(1, VAULT, w(-30), w(-10), ","),
        run.format(2, DEFAULT_SITE_ID, w(0), w(60), "D1:04DD000000D001;D2:04DD000000D002,O01;O02"), ""]), "utf-8")
    return dispatch


def add_users(db_path: Path) -> dict[str, str]:
    """One login per role, named after it, with a password made for this run."""
    db = Database(db_path, retry_for=0).create_schema()
    logins = {}
    try:
        for role in ROLES:
            logins[role] = secrets.token_urlsafe(9)
            Auth(db).add_user(role, role, logins[role], by="demo")
    finally:
        db.close()
    return logins


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="./dev demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8080, help="the terminal's screen (default 8080)")
    p.add_argument("--hq-port", type=int, default=8081, help="head office's monitoring page (default 8081)")
    p.add_argument("--mqtt-port", type=int, default=None, help="the local broker (default: a free port)")
    p.add_argument("--state-dir", type=Path, default=ROOT / "var",
                   help="the terminal's state; head office, broker and logs go in folders inside (default ./var)")
    return p.parse_args(argv)


def start(args, children: list[Child]) -> None:
    state = args.state_dir.resolve()
    logs = state / "logs"
    python = sys.executable
    terminal_argv = [python, "-m", "agent.cli", "run", "--simulate", "--state-dir", str(state),
                     "--port", str(args.port)]
    mosquitto = shutil.which("mosquitto")
    if mosquitto is None:
        print(NO_BROKER, file=sys.stderr, flush=True)
    else:
        hq_dir, broker_dir = state / "hq", state / "broker"
        for fresh in (hq_dir, broker_dir):
            shutil.rmtree(fresh, ignore_errors=True)
        hq_dir.mkdir(parents=True)
        pki = make_pki(hq_dir, state)
        mqtt_port = args.mqtt_port or free_port()
        broker = Child("mosquitto", [mosquitto, "-c", str(broker_conf(broker_dir, mqtt_port, pki))],
                       logs / "mosquitto.log")
        children.append(broker)
        wait_until_up(broker, lambda: listens(mqtt_port), f"listener on port {mqtt_port}")

        sites = hq_dir / "sites.json"
        sites.write_text(json.dumps({**SITE_NAMES, DEFAULT_SITE_ID: DEMO_SITE_NAME}, ensure_ascii=False), "utf-8")
        db = hq_dir / "hq.db"
        logins = add_users(db)
        dispatch = schedule_files(hq_dir)
        hq_url = f"http://127.0.0.1:{args.hq_port}/"
        office = Child("head office", [python, "-m", "hq.cli", "serve", "--host", "127.0.0.1",
                                       "--port", str(mqtt_port), "--ca", str(pki["ca"]), "--cert", str(pki["hq"]),
                                       "--key", str(pki["hq_key"]), "--db", str(db),
                                       "--http", f"127.0.0.1:{args.hq_port}", "--sites", str(sites),
                                       "--complaint-keys", str(pki["keys"]), "--records-key", str(pki["records"]),
                                       "--keys", str(pki["keys"]),
                                       "--identities", str(pki["identities"]), "--bundles", str(hq_dir / "bundles")],
                       logs / "hq.log")
        children.append(office)
        wait_until_up(office, lambda: answers(hq_url + "login"), f"login page at {hq_url}")
        terminal_argv += ["--config", str(agent_conf(hq_dir / "agent.toml", state, mqtt_port, pki))]

    terminal = Child("terminal", terminal_argv, logs / "terminal.log")
    children.append(terminal)
    screen_url = f"http://127.0.0.1:{args.port}/"
    wait_until_up(terminal, lambda: answers(screen_url + "api/view"), f"screen at {screen_url}")

    print(f"\nterminal (simulation, sample day): {screen_url}")
    if mosquitto is not None:
        print(f"head office (monitoring centre):    {hq_url}   logins for this run only:")
        for role, password in logins.items():
            print(f"    {role:<18} password {password}")
        print(f"MQTT broker (mosquitto, TLS):      127.0.0.1:{mqtt_port}")
        print(f"a dispatch for today to upload as admin on {hq_url}schedule: {dispatch}")
    print(f"logs: {logs}/   Ctrl-C stops {'all three' if mosquitto else 'the terminal'}.", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    children: list[Child] = []
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    code = 0
    try:
        start(args, children)
        while all(c.proc.poll() is None for c in children):
            time.sleep(0.5)
        gone = next(c for c in children if c.proc.poll() is not None)
        print(f"{gone.name} exited ({gone.proc.returncode}); stopping the demo. The end of {gone.log}:\n"
              f"{gone.tail()}", file=sys.stderr)
        code = 1
    except Stop:
        print("\nstopping the demo", flush=True)
    except RuntimeError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        code = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):        # a second Ctrl-C must not cut the clean stop short
            signal.signal(sig, signal.SIG_IGN)
        for child in reversed(children):                   # the terminal first: head office sees it go offline
            child.stop(20 if child.name != "mosquitto" else 10)
    return code


if __name__ == "__main__":
    sys.exit(main())
