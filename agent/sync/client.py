"""The sync service: one MQTT v5 connection to head office, run by one thread (SPEC §4).

paho's network thread only moves bytes and records events; everything else (reading the
journal, moving the cursor, applying downlinks) happens on the sync thread, so the journal and
store are touched from one place. The handover never waits for sync: appends only wake it.
"""
from __future__ import annotations

import collections
import logging
import random
import shutil
import socket
import ssl
import threading
import time
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.config import settings_view
from agent.journal import utc_timestamp
from protocol import messages, snapshot
from agent.sync.downlink import Downlink
from agent.sync.uplink import DEFAULT_URGENT_KINDS, Outbox
from offline.usb import refused_count

log = logging.getLogger(__name__)


class Sync:
    """Head-office sync for one device.

    config: the agent's Config (uses .mqtt, .device.id, .site.id, .paths.state_dir if present).
    journal: the agent's own Journal object (one writer per file: a second Journal on the same
      path would not see this one's appends). store: a Store, or a callable returning one.
    on_downlink(kind, payload): called on the sync thread after a downlink was journaled.
    on_link(up, error): called on the sync thread when head office becomes reachable or unreachable.
    health(): returns a dict of driver health, published every health_interval seconds.
    modules, loop: fingerprint modules handed to the personnel importer, and the asyncio loop
      they run on (the importer is awaited there).
    """

    def __init__(self, config, journal, store, *, on_downlink: Callable[[str, dict], None] | None = None,
                 health: Callable[[], dict] | None = None, modules=(), loop=None, health_interval: float = 60.0,
                 window: int = 10, batch_entries: int = 200, batch_bytes: int = 32 * 1024, urgent_kinds=DEFAULT_URGENT_KINDS,
                 backoff: tuple[float, float] = (0.5, 30.0), session_expiry: int = 7 * 24 * 3600,
                 complaints=None, on_link: Callable[[bool, str | None], None] | None = None,
                 probe_interval: float = 1.0, snapshots=None):
        self.mqtt = config.mqtt
        self.device = config.device.id
        self.site_id = config.site.id
        self.journal = journal
        self.topics = messages.Topics(self.mqtt.topic_prefix, self.device)
        self.outbox = Outbox(journal, self.device, self.topics, window=window, batch_entries=batch_entries,
                             batch_bytes=batch_bytes, urgent_kinds=urgent_kinds)
        self.downlink = Downlink(journal, store, device=self.device, site_id=self.site_id,
                                 on_command=self._on_command, modules=modules, on_downlink=on_downlink,
                                 loop=loop, complaints=complaints, config=config)
        self.snapshots = snapshots      # agent.snapshots.SnapshotOutbox: faces sealed for head office
        self._health = health
        self._health_interval = health_interval
        self._disk_path = getattr(getattr(config, "paths", None), "state_dir", None) or journal.path.parent
        self._backoff_min, self._backoff_max = backoff
        self._session_expiry = session_expiry
        self._on_link = on_link
        self._link_up: bool | None = None
        self._probe_interval = probe_interval
        self._next_probe = 0.0

        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self._net_started = False
        self._dropped = False
        self._attempts = 0
        self._next_attempt = 0.0
        self._next_health = 0.0
        self._health_now = False
        self._rewind_after = 0.0
        self._nacked = False
        self._incoming: collections.deque[mqtt.MQTTMessage] = collections.deque()
        self._subscribed = False
        self.reconnects = 0
        self.last_error: str | None = None
        self._client = self._make_client()

    # -- public ------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("sync already started")
        if not self._subscribed:
            self.journal.subscribe(self._on_entry)
            self._subscribed = True
        self._thread = threading.Thread(target=self._run, name=f"sync-{self.device}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Say offline (retained), disconnect, and join the thread. Unacked entries stay in the journal."""
        if self._thread is None:
            return
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None

    def status(self) -> dict:
        return {
            "device": self.device, "connected": self._connected, "acked_seq": self.outbox.acked_seq,
            "last_seq": self.journal.last_seq(), "backlog": self.outbox.backlog(),
            "in_flight": self.outbox.in_flight, "reconnects": self.reconnects, "last_error": self.last_error,
        }

    # -- paho callbacks (network thread): record and wake ---------------------------------------------

    def _on_entry(self, entry) -> None:
        if self._thread is not None:
            self.outbox.on_entry(entry)
            self._wake.set()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            self._dropped = True
        else:
            self._connected = True
            self._attempts = 0
            self._health_now = True
            if self.snapshots is not None:
                self.snapshots.link_up()
            client.subscribe(self.topics.down_filter, qos=1)
            client.publish(self.topics.up("status"), self._status_payload("online"), qos=1, retain=True)
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected = False
        self._dropped = True
        if reason_code.is_failure:
            self.last_error = f"disconnected: {reason_code}"
        self._wake.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if reason_code.is_failure:
            # The broker did not take it (quota, ACL): it stays unacknowledged and goes again.
            self.last_error = f"broker refused a publish: {reason_code}"
            self._nacked = True
        else:
            self.outbox.on_ack(mid)
        self._wake.set()

    def _on_message(self, client, userdata, message) -> None:
        self._incoming.append(message)
        self._wake.set()

    # -- the sync thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            if self._dropped:
                self._dropped = False
                self._client.loop_stop()
                self._net_started = False
                self._schedule_retry()
            if not self._connected:
                if not self._net_started:
                    self._probe()
                    if time.monotonic() >= self._next_attempt:
                        self._connect()
                self._wake.wait(0.05)
                self._wake.clear()
                continue
            self._link(True, None)
            self._wake.clear()
            try:
                self._step()
            except Exception as exc:  # keep syncing; the error is visible in status()
                self.last_error = f"sync step failed: {exc}"
                log.exception("sync step failed")
            self._wake.wait(0.5)
        self._shutdown()

    def _step(self) -> None:
        publish = self._publish
        while self._incoming:
            self._handle_downlink(self._incoming.popleft())
        self.outbox.settle_acks()
        if self._nacked and time.monotonic() >= self._rewind_after:
            self._nacked = False
            self._rewind_after = time.monotonic() + self._backoff_min
            self.outbox.rewind()
        self.outbox.send_urgent(publish)
        self.outbox.fill(publish)
        if self.snapshots is not None:
            for _, message in self.snapshots.due():
                publish(self.topics.up(snapshot.UPLINK), message)
        now = time.monotonic()
        if self._health_now or now >= self._next_health:
            self._health_now = False
            self._next_health = now + self._health_interval
            self._publish_health()

    def _publish(self, topic: str, payload: bytes, retain: bool = False) -> int | None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        # NO_CONN: paho keeps it and sends it after the reconnect, like any in-flight message.
        if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return info.mid
        return None

    def _handle_downlink(self, message: mqtt.MQTTMessage) -> None:
        kind = message.topic.rsplit("/", 1)[-1]
        if kind == snapshot.STORED:
            return self._snapshots_stored(message)
        try:
            reply = self.downlink.handle(message.topic, kind, message.payload)
        except Exception as exc:    # never leave a message unanswered and unacknowledged, to fail again forever
            log.error("downlink on %s failed: %s", message.topic, type(exc).__name__)
            reply = {"v": messages.VERSION, "device": self.device, "msg_id": None, "topic": message.topic,
                     "ok": False, "error": f"{kind} could not be handled: {type(exc).__name__}"}
        if not reply["ok"]:
            log.warning("downlink on %s refused: %s", message.topic, reply["error"][:300])
        elif kind == "config":
            self._health_now = True     # head office sees the settings now in effect at once
        self._publish(self.topics.up("reply"), messages.encode(reply))
        # Acknowledged only now: a crash before this point gets the message redelivered.
        self._client.ack(message.mid, message.qos)

    def _snapshots_stored(self, message: mqtt.MQTTMessage) -> None:
        """Head office has these snapshots: they leave the outbox. Not journaled (the outbox is no record;
        the journal names each snapshot already) and answered by nothing: a repeat deletes nothing more."""
        try:
            hashes = snapshot.parse_stored(message.payload)["hashes"]
        except messages.MessageError as exc:
            log.warning("snapshot_stored refused: %s", exc)
        else:
            if self.snapshots is not None:
                self.snapshots.stored(hashes)
        self._client.ack(message.mid, message.qos)

    def _on_command(self, payload: dict) -> None:
        if payload["command"] == "resend_from":
            self.outbox.resend_from(payload["seq"])
        elif payload["command"] == "publish_health":
            self._health_now = True

    def _publish_health(self) -> None:
        try:
            drivers = dict(self._health()) if self._health else {}
        except Exception as exc:
            drivers = {"error": f"health callable failed: {exc}"}
        disk = shutil.disk_usage(self._disk_path)
        last = self.journal.last_seq()
        payload = {
            "v": messages.VERSION, "device": self.device, "ts": utc_timestamp(),
            "journal": {"last_seq": last, "acked_seq": self.outbox.acked_seq, "backlog": self.outbox.backlog()},
            "disk": {"free_bytes": disk.free, "total_bytes": disk.total}, "drivers": drivers,
        }
        if self.downlink.config is not None:
            payload["settings"] = settings_view(self.downlink.config)
            # Refused bundles wait in refused/ for a technician: head office sees how many.
            payload["bundles"] = {"refused": refused_count(self.downlink.config.paths.state_dir)}
        # Retained: a head office that connects later learns how far the journal goes at once.
        self._publish(self.topics.up("health"), messages.encode(payload), retain=True)

    def _status_payload(self, state: str, with_ts: bool = True) -> bytes:
        payload = {"v": messages.VERSION, "device": self.device, "site_id": self.site_id, "state": state}
        if with_ts:
            payload["ts"] = utc_timestamp()
        return messages.encode(payload)

    # -- connection ----------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.device, protocol=mqtt.MQTTv5,
                             reconnect_on_failure=False, manual_ack=True)
        client.tls_set(ca_certs=str(self.mqtt.ca_file), certfile=str(self.mqtt.cert_file),
                       keyfile=str(self.mqtt.key_file), cert_reqs=ssl.CERT_REQUIRED)
        # The outbox bounds what is in flight; paho must not queue urgent copies behind it.
        client.max_inflight_messages_set(self.outbox.window + 10)
        client.max_queued_messages_set(0)
        client.will_set(self.topics.up("status"), self._status_payload("offline", with_ts=False), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _connect(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._session_expiry
        try:
            # clean_start=False from the very first connect (TESTING.md: mosquitto 2.0.11).
            self._client.connect(self.mqtt.host, self.mqtt.port, keepalive=self.mqtt.keepalive,
                                 clean_start=False, properties=props)
        except (OSError, ssl.SSLError) as exc:
            self.last_error = f"cannot connect to {self.mqtt.host}:{self.mqtt.port}: {exc}"
            self._schedule_retry()
            return
        self._client.loop_start()
        self._net_started = True

    def _link(self, up: bool, error: str | None) -> None:
        if up != self._link_up:
            self._link_up = up
            if self._on_link is not None:
                try:
                    self._on_link(up, error)
                except Exception:
                    log.exception("on_link failed")

    def _probe(self) -> None:
        """While waiting out the backoff, look once a second whether the broker's port answers again
        (the network came back, the broker restarted): then retry at once instead of waiting up to
        the backoff's ceiling. A TCP handshake only; no TLS, nothing sent."""
        now = time.monotonic()
        if self._next_attempt - now < self._probe_interval or now < self._next_probe:
            return
        self._next_probe = now + self._probe_interval
        try:
            socket.create_connection((self.mqtt.host, self.mqtt.port), timeout=min(0.5, self._probe_interval)).close()
        except OSError:
            return
        # A little jitter still, so a fleet whose network returns does not reconnect in one instant.
        self._next_attempt = now + random.uniform(0, min(self._backoff_min, 2.0))

    def _schedule_retry(self) -> None:
        """Exponential backoff with full jitter, so a fleet does not reconnect in step."""
        self._link(False, f"head office unreachable: {self.last_error or 'connection lost'}")
        ceiling = min(self._backoff_max, self._backoff_min * 2 ** self._attempts)
        self._attempts += 1
        self.reconnects += 1
        self._next_attempt = time.monotonic() + random.uniform(self._backoff_min, max(self._backoff_min, ceiling))

    def _shutdown(self) -> None:
        self.outbox.settle_acks()
        self.outbox.flush()
        if self._connected:
            info = self._client.publish(self.topics.up("status"), self._status_payload("offline"), qos=1, retain=True)
            try:
                info.wait_for_publish(2.0)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False
        self._net_started = False
