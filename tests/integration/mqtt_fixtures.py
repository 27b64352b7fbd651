"""What the MQTT tests share: a real mosquitto per test (broker.py), head office's certificate for it, head
office's companion watching it, and waiting for an effect. Fixtures are imported by name into a test module (`from mqtt_fixtures import broker`),
the way pcsc_fixtures' are; a module that imports them passes them on under the same names."""
from __future__ import annotations

import time

import pytest
from broker import HQ_IDENTITY, Broker, Pki

from hq.sync import HeadOffice


@pytest.fixture
def broker(tmp_path):
    (tmp_path / "broker").mkdir()
    b = Broker(tmp_path / "broker", Pki(tmp_path / "pki")).start()
    yield b
    b.stop()


@pytest.fixture
def hq_cert(broker):
    """(certificate, key) files of the head-office identity, which the broker's ACL lets read every uplink."""
    return broker.pki.issue(HQ_IDENTITY)


@pytest.fixture
def hq(broker):
    """Head office's companion (hq.sync) on the broker, which it carries as `.broker`. Asks for the broker
    alone, so a module that imports `hq` and `broker` has all it needs."""
    cert, key = broker.pki.issue(HQ_IDENTITY)
    office = HeadOffice("127.0.0.1", broker.port, ca_file=broker.pki.ca_file, cert_file=cert, key_file=key,
                        client_id=HQ_IDENTITY, resend_after=1.0).start()
    office.broker = broker
    yield office
    office.stop()


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
