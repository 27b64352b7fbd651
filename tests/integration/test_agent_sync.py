"""The daemon's sync with head office, end to end: the real agent process against a real mosquitto
(mutual TLS, ACL), watched by the head-office companion. Alarms and task progress reach head office as
they happen; the chain verifies there; an agent restart sends nothing twice."""
from __future__ import annotations

import time

from broker import Broker, Pki, mqtt_config  # noqa: F401
from agent.sample import STRANGER_BEACON, TRUCKS
from offline.hq_sync import HeadOffice


def wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "head office never saw it"
        time.sleep(0.05)


def test_agent_publishes_progress_and_alarms_to_head_office(agent, tmp_path):
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker", Pki(tmp_path / "pki")).start()
    cert, key = broker.pki.issue("hq")
    hq = HeadOffice("127.0.0.1", broker.port, ca_file=broker.pki.ca_file, cert_file=cert, key_file=key,
                    client_id="hq", resend_after=1.0).start()
    try:
        config = mqtt_config(broker, "dev-sync-1", "BR-050", agent.state_dir)
        agent.start("--config", str(agent.state_dir / "agent.toml"))
        agent.post("api/sim/beacon", {"beacon": STRANGER_BEACON})              # an unknown truck: alarm
        wait(lambda: any(a["kind"] == "alarm" and a["body"]["alarm"] == "unknown_vehicle" for _, a in hq.alarms))
        agent.post("api/sim/beacon", {"beacon": TRUCKS[0].beacon})             # the real one: task progress
        wait(lambda: any(e["kind"] == "arrival" for e in hq.log("dev-sync-1").entries))
        log = hq.log("dev-sync-1")
        assert log.site_id == config.site.id and not log.chain_errors
        sent = log.last_seq
        assert agent.stop() == 0
        agent.start("--config", str(agent.state_dir / "agent.toml"))          # restart: resumes, no duplicates
        wait(lambda: hq.log("dev-sync-1").last_seq > sent)                    # its "agent_started" entry
        assert agent.view()["handover"]["step"] == "escort_verification"
        log = hq.log("dev-sync-1")
        assert [e["seq"] for e in log.entries] == list(range(1, log.last_seq + 1))
        assert not log.chain_errors
    finally:
        hq.stop()
        broker.stop()
