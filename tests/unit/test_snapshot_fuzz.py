"""Face snapshots (protocol/snapshot.py, hq/records.py, agent/snapshots.py): what arrives from outside is
parsed and checked, never trusted. Head office's `serve` reader takes any bytes on the snapshot topic without
raising and keeps only blobs that open with its records key to the photo their hash names; the terminal's
answer parser and the records page's search form refuse what is wrong with a message naming it. The outbox
keeps a face until head office has it, across a restart."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.client import MQTTMessage
from PIL import Image

from agent.journal import Journal
from agent.sample import placeholder_photo
from agent.snapshots import IN_FLIGHT, SnapshotOutbox, cap_jpeg
from drivers.camera import opencv
from hq import records
from hq.db import Database
from hq.serve import Server
from protocol import messages, snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from broker import Pki  # noqa: E402

FACE = placeholder_photo("face", (200, 80, 90))          # a real JPEG: head office reads its frame header
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = X25519PrivateKey.generate()
DIGEST, SEALED = snapshot.seal_snapshot(KEY.public_key(), "dev-f", FACE)
GENUINE = json.loads(snapshot.uplink(KEY.public_key(), "dev-f", DIGEST, SEALED))

scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=30)
fields = st.fixed_dictionaries({}, optional={k: scalars for k in ("v", "device", "hash", "key", "sealed", "x")})


class Office:
    """A Server with a records key over a fresh SQLite file; its MQTT clients are never connected."""

    def __init__(self):
        folder = Path(tempfile.mkdtemp(prefix="fuzz-snap-"))
        pki = Pki(folder / "pki")
        cert, key = pki.issue("hq")
        self.server = Server(str(folder / "hq.db"), "127.0.0.1", 1, ca_file=pki.ca_file, cert_file=cert,
                             key_file=key, records_key=KEY)
        self.db = Database(folder / "hq.db")

    def receive(self, device: str, payload: bytes) -> None:
        message = MQTTMessage(topic=f"ht/v1/{device}/snapshot".encode())
        message.payload = payload
        self.server._on_message(self.server.stream, self.server.stream.user_data_get(), message)   # never raises

    def kept(self) -> list[tuple[str, str, str]]:
        return self.db.run(lambda cur: cur.all("SELECT device, hash, sealed FROM hq_records_snapshots"))


OFFICE: Office | None = None


def flipped(text: str, at: int, bit: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[at % len(raw)] ^= 1 << (bit % 8)
    return base64.b64encode(bytes(raw)).decode()


@FUZZ
@given(st.binary(max_size=400)
       | fields.map(lambda f: json.dumps(f).encode())
       | fields.map(lambda f: json.dumps({**GENUINE, **f}).encode())
       | st.tuples(st.integers(0, 10 ** 6), st.integers(0, 7)).map(
           lambda t: json.dumps({**GENUINE, "sealed": flipped(SEALED, *t)}).encode()),
       st.sampled_from(["dev-f", "dev-g"]))
def test_serve_keeps_only_faces_that_open_to_their_hash(payload, device):
    global OFFICE
    OFFICE = OFFICE or Office()
    OFFICE.receive(device, payload)
    for dev, digest, sealed in OFFICE.kept():
        assert hashlib.sha256(snapshot.open_snapshot(KEY, dev, digest, sealed)).hexdigest() == digest
    OFFICE.receive("dev-f", json.dumps(GENUINE).encode())      # the genuine one is taken, whatever came before
    assert ("dev-f", DIGEST, SEALED) in OFFICE.kept()


@FUZZ
@given(st.binary(max_size=300) | st.fixed_dictionaries({}, optional={"v": scalars, "hashes": st.lists(
    st.text(alphabet="0123456789abcdefg", min_size=63, max_size=65) | scalars, max_size=3)}).map(
        lambda d: json.dumps(d).encode()))
def test_the_terminal_takes_only_well_formed_answers(raw):
    try:
        stored = snapshot.parse_stored(raw)
    except messages.MessageError as exc:
        assert str(exc)
        return
    assert stored["v"] == 1 and all(snapshot.HASH.match(h) for h in stored["hashes"])


@FUZZ
@given(st.dictionaries(st.sampled_from(["date", "site", "truck", "person", "box", "other"]), st.text(max_size=80)))
def test_the_search_form_is_refused_by_name_or_taken(form):
    try:
        q = records.Query.parse(form)
    except records.RecordsError as exc:
        assert str(exc).split(":")[0] in ("date", "site", "truck", "person", "box")
        return
    assert all(len(getattr(q, f)) <= records.MAX_TERM for f in ("site", "truck", "person", "box"))


@FUZZ
@given(st.text(max_size=200), st.text(max_size=80))
def test_opening_refuses_anything_but_the_sealed_photo(sealed, digest):
    with pytest.raises(snapshot.SnapshotError):
        snapshot.open_snapshot(KEY, "dev-f", digest, sealed)


@FUZZ
@given(st.binary(max_size=300) | st.binary(max_size=300).map(lambda b: b"\xff\xd8" + b))
def test_the_jpeg_header_reader_never_raises(data):
    size = snapshot.jpeg_dimensions(data)
    assert size is None or (size[0] > 0 and size[1] > 0)


@pytest.mark.parametrize("progressive", [False, True])
def test_the_jpeg_header_reader_agrees_with_pillow(progressive):
    out = io.BytesIO()
    Image.new("RGB", (333, 77), (10, 20, 30)).save(out, "JPEG", progressive=progressive, quality=70)
    assert snapshot.jpeg_dimensions(out.getvalue()) == (333, 77)
    assert snapshot.jpeg_dimensions(out.getvalue()[:20]) is None


def test_the_opencv_camera_takes_faces_within_head_offices_cap():
    assert (opencv.FACE_MAX_SIDE, opencv.FACE_MAX_BYTES) == (snapshot.MAX_SIDE, snapshot.MAX_JPEG_BYTES)
    crop = np.random.default_rng(2).integers(0, 255, (900, 700, 3), dtype=np.uint8)
    jpeg = opencv.encode_jpeg(crop).jpeg
    assert snapshot.jpeg_dimensions(jpeg) == (249, 320) and len(jpeg) <= snapshot.MAX_JPEG_BYTES
    assert cap_jpeg(jpeg) is jpeg, "the agent keeps such a face as it is"


def test_a_large_face_is_capped_and_a_small_one_kept_as_it_is():
    noisy = Image.fromarray(np.random.default_rng(1).integers(0, 255, (1200, 1600, 3), dtype=np.uint8))
    out = io.BytesIO()
    noisy.save(out, "JPEG", quality=95)
    assert out.tell() > snapshot.MAX_JPEG_BYTES
    capped = cap_jpeg(out.getvalue())
    img = Image.open(io.BytesIO(capped))
    assert img.format == "JPEG" and max(img.size) == snapshot.MAX_SIDE and len(capped) <= snapshot.MAX_JPEG_BYTES
    small = io.BytesIO()
    noisy.resize((160, 120)).save(small, "JPEG", quality=80)
    assert cap_jpeg(small.getvalue()) == small.getvalue()
    assert cap_jpeg(b"not an image") == b"not an image"


def test_the_outbox_keeps_a_face_until_head_office_has_it_even_across_a_restart(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    box = SnapshotOutbox(journal, "dev-o", KEY.public_key())
    faces = [placeholder_photo("face", (40 * i, 80, 90)) for i in range(IN_FLIGHT + 2)]
    for face in faces:
        box.add(face)
    box.add(faces[0])                                           # the same photo twice: kept once
    first = box.due()
    assert len(first) == IN_FLIGHT and box.due() == [], "a window of faces in flight, no more"
    digest, message = first[0]
    sent = snapshot.parse_uplink(message)
    assert snapshot.open_snapshot(KEY, "dev-o", sent["hash"], sent["sealed"]) in faces
    assert box.stored([digest]) == 1 and box.pending() == len(faces) - 1
    assert len(box.due()) == 1                                  # the answer made room for one more
    journal.close()

    journal = Journal(tmp_path / "journal.db")                  # a restart: the rest go again
    again = SnapshotOutbox(journal, "dev-o", KEY.public_key())
    assert again.pending() == len(faces) - 1
    assert {d for d, _ in again.due()} <= {hashlib.sha256(f).hexdigest() for f in faces} - {digest}
    assert SnapshotOutbox(journal, "dev-o", None).pending() == len(faces) - 1
    journal.close()
