"""What the MQTT tests share: a real mosquitto per test (broker.py), head office's certificate for it, head
office's companion watching it, and waiting for an effect. Fixtures are imported by name into a test module
(`from mqtt_fixtures import broker, hq`), the way pcsc_fixtures' are; a module that imports them passes
them on under the same names. Each fixture works imported alone: `hq` without `broker` still has one."""
from __future__ import annotations

import time

import pytest
from broker import HQ_IDENTITY, Broker, Pki

from hq.sync import HeadOffice

_BROKER = pytest.StashKey[Broker]()


def _broker(request, tmp_path) -> Broker:
    """The test's one broker, started by whichever fixture asks first and stopped after them all. (A
    fixture's arguments are looked up in the test's module: `hq` asking for `broker` would break a module
    that imports `hq` alone, as test_agent_poison does.)"""
    node = request.node
    if _BROKER not in node.stash:
        (tmp_path / "broker").mkdir()
        node.stash[_BROKER] = Broker(tmp_path / "broker", Pki(tmp_path / "pki")).start()
        node.addfinalizer(node.stash[_BROKER].stop)      # registered before the fixtures' own: runs after them
    return node.stash[_BROKER]


@pytest.fixture
def broker(request, tmp_path):
    return _broker(request, tmp_path)


@pytest.fixture
def hq_cert(request, tmp_path):
    """(certificate, key) files of the head-office identity, which the broker's ACL lets read every uplink."""
    return _broker(request, tmp_path).pki.issue(HQ_IDENTITY)


@pytest.fixture
def hq(request, tmp_path):
    """Head office's companion (hq.sync) on the test's broker, which it carries as `.broker`."""
    broker = _broker(request, tmp_path)
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
