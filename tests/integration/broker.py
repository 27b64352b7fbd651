"""A real mosquitto for the sync tests: mutual TLS, one certificate per device, ACL, persistence.

Certificates are made here with `cryptography` (CN = device id, which mosquitto takes as the
username through use_identity_as_username). The ACL confines each device to its own topic tree
and gives the head-office identity the whole tree (docs/mqtt.md shows the same file).
"""
from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from protocol.messages import broker_acl

PREFIX = "ht/v1"
HQ_IDENTITY = "hq"

ACL = broker_acl(PREFIX, HQ_IDENTITY)     # docs/mqtt.md shows the same file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pki:
    """A test CA that issues client and server certificates into `folder`."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "handover test CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self._cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                      .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                      .not_valid_before(now - datetime.timedelta(days=1))
                      .not_valid_after(now + datetime.timedelta(days=30))
                      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                      .sign(self._key, hashes.SHA256()))
        self.ca_file = folder / "ca.pem"
        self.ca_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str, server: bool = False) -> tuple[Path, Path]:
        """(cert_file, key_file) for `common_name`."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(self._cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=30)))
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                             x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
                critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        cert_file, key_file = self.folder / f"{common_name}.crt", self.folder / f"{common_name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_file.chmod(0o600)
        return cert_file, key_file


class Broker:
    """mosquitto on a free loopback port; `kill()` is SIGKILL, `start()` again keeps its persistence."""

    def __init__(self, folder: Path, pki: Pki, port: int | None = None):
        self.folder = folder
        self.port = port or free_port()
        self.pki = pki
        self.proc: subprocess.Popen | None = None
        cert, key = pki.issue("localhost", server=True)
        (folder / "acl").write_text(ACL)
        (folder / "data").mkdir(exist_ok=True)
        self.log_file = folder / "mosquitto.log"
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"""\
user root
per_listener_settings false
allow_anonymous false
persistence true
persistence_location {folder / 'data'}/
autosave_interval 1
autosave_on_changes true
log_dest file {self.log_file}
log_type error
log_type warning
log_type notice
max_queued_messages 0
max_inflight_messages 100
acl_file {folder / 'acl'}
listener {self.port} 127.0.0.1
cafile {pki.ca_file}
certfile {cert}
keyfile {key}
require_certificate true
use_identity_as_username true
""")

    def start(self) -> "Broker":
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode()} "
                                   f"{self.log_file.read_text() if self.log_file.exists() else ''}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within 10 s")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


class SlowLink:
    """A TCP relay in front of the broker whose device-to-broker direction carries at most `rate`
    bytes per second (None: as fast as it goes): a branch's thin uplink, and a drain whose pace
    the test sets instead of the machine's speed."""

    def __init__(self, target_port: int, rate: int | None):
        self.target_port = target_port
        self.rate = rate
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                device, _ = self._listener.accept()
            except OSError:
                return
            broker = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [device, broker]
            threading.Thread(target=self._pump, args=(device, broker, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(broker, device, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, throttled: bool) -> None:
        try:
            while chunk := src.recv(1024):
                if throttled and self.rate:
                    time.sleep(len(chunk) / self.rate)
                dst.sendall(chunk)
        except OSError:
            pass
        for sock in (src, dst):    # one side gone (a killed agent): the other hears it closed
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for sock in self._sockets:
            sock.close()


def mqtt_config(broker: Broker, device: str, site_id: str, state_dir: Path):
    """An agent Config that points the device `device` at `broker` with its own certificate."""
    from agent.config import load_config
    cert, key = broker.pki.issue(device)
    state_dir.mkdir(parents=True, exist_ok=True)
    conf = state_dir / "agent.toml"
    conf.write_text(f"""\
[site]
id = "{site_id}"
[device]
id = "{device}"
simulate = true
[paths]
state_dir = "{state_dir}"
[mqtt]
enabled = true
host = "127.0.0.1"
port = {broker.port}
ca_file = "{broker.pki.ca_file}"
cert_file = "{cert}"
key_file = "{key}"
keepalive = 10
""")
    return load_config(conf)


def env_with_repo() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env


def open_device(config, journal_path: Path):
    """The agent's journal and store for a device, as the daemon opens them."""
    from agent.journal import Journal
    from agent.sealing import Sealer
    from agent.store import Store
    journal = Journal(journal_path)
    store = Store(journal.db, Sealer(journal_path.parent / "device.key"), journal_path.parent / "photos")
    return journal, store


def run_agent(conf_path: str, journal_path: str, append_every: float) -> None:
    """A stand-in agent process (the kill test's victim): syncs, and appends while it lives."""
    from agent.config import load_config
    from agent.sync import Sync
    config = load_config(conf_path)
    journal, store = open_device(config, Path(journal_path))
    sync = Sync(config, journal, store, window=10, batch_entries=50, backoff=(0.05, 0.5))
    sync.start()
    while not sync.status()["connected"]:
        time.sleep(0.01)
    print("connected", flush=True)
    n = 0
    while True:
        if append_every > 0:
            n += 1
            journal.append("alarm" if n % 7 == 0 else "box_read", {"pid": os.getpid(), "n": n}, task_id="T-kill")
            time.sleep(append_every)
        else:
            time.sleep(1)


if __name__ == "__main__":
    import sys
    run_agent(sys.argv[1], sys.argv[2], float(sys.argv[3]))
