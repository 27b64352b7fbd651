"""What terminal and head office agree on about complaints (protocol/complaint.py): the lifecycle's words
match the terminal's own table, and the sealed details open only with head office's key, for the
complaint and step they were sealed for; anything else is refused with a reason and never a crash."""
from __future__ import annotations

import base64
import json
import random
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocol
from flows import complaint as fc
from protocol import complaint as pc
from protocol.complaint import SealedDetailsError, open_details, seal_details

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = X25519PrivateKey.generate()
REF = "BR-001-TS20261130-001"
DETAILS = {"name": "欧阳娜娜", "contact": "13712345678", "description": "办理汇款被多收手续费", "request": "退还",
           "counter": "2号窗口"}


def test_head_office_reads_the_terminals_lifecycle_words():
    assert pc.STATUSES == tuple(s.value for s in fc.Status)
    assert pc.AWAITING_REPLY == {s.value for s in fc.AWAITING_REPLY}
    assert pc.RESOLVED == {s.value for s in fc.RESOLVED}
    assert pc.CATEGORIES == fc.CATEGORIES
    assert pc.ACTIONS == tuple(fc.ACTIONS)
    schemas = Path(protocol.__file__).parent / "schemas"
    step = json.loads((schemas / "complaint_transition.json").read_text("utf-8"))["properties"]
    assert step["action"]["enum"] == list(pc.ACTIONS)
    assert step["before"]["enum"] == step["after"]["enum"] == list(pc.STATUSES)


def test_details_open_with_head_offices_key_for_their_complaint_and_step_only():
    sealed = seal_details(KEY.public_key(), REF, pc.REGISTER_STEP, DETAILS)
    assert open_details(KEY, REF, pc.REGISTER_STEP, sealed) == DETAILS
    assert "欧阳" not in sealed and "1371" not in sealed
    with pytest.raises(SealedDetailsError, match="do not open with this key"):
        open_details(X25519PrivateKey.generate(), REF, pc.REGISTER_STEP, sealed)
    with pytest.raises(SealedDetailsError, match="do not open"):
        open_details(KEY, "BR-001-TS20261130-002", pc.REGISTER_STEP, sealed)      # moved to another complaint
    with pytest.raises(SealedDetailsError, match="do not open"):
        open_details(KEY, REF, "handle", sealed)                                  # or to another step
    # two seals of the same details differ (a fresh encapsulated key each time): equal texts are not linkable
    assert seal_details(KEY.public_key(), REF, pc.REGISTER_STEP, DETAILS) != sealed


def test_the_largest_step_the_terminal_allows_still_seals():
    """Four 2000-character texts of random Chinese (the form's limits) still fit sync's 32 KiB batch; a real
    step's text compresses far better."""
    rng = random.Random(7)
    noise = lambda n: "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(n))    # noqa: E731
    worst = {k: noise(2000) for k in ("notes", "cause", "remedy", "staff_opinion")} | {"handler_phone": "1" * 30}
    sealed = seal_details(KEY.public_key(), REF, "handle", worst)
    assert len(sealed) < 32 * 1024 and open_details(KEY, REF, "handle", sealed) == worst
    typical = {"notes": "经核查，柜员未按规定公示收费标准，已退还多收手续费。" * 40, "cause": "公示缺失" * 100}
    assert len(seal_details(KEY.public_key(), REF, "handle", typical)) < 8 * 1024


def _refused(sealed) -> None:
    with pytest.raises(SealedDetailsError):
        open_details(KEY, REF, "handle", sealed)


@FUZZ
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()),
                 st.none(), st.integers(), st.lists(st.text(max_size=5), max_size=3)))
def test_anything_but_a_sealed_blob_is_refused_with_a_reason(junk):
    _refused(junk)


@FUZZ
@given(st.data())
def test_a_sealed_blob_changed_anywhere_is_refused(data):
    raw = bytearray(base64.b64decode(seal_details(KEY.public_key(), REF, "handle", {"notes": "已退费"})))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(raw)))
    _refused(base64.b64encode(bytes(raw)).decode())
    _refused(base64.b64encode(bytes(raw[:cut])).decode())


def test_a_blob_that_inflates_past_the_cap_or_is_not_an_object_is_refused():
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    info = b"HTC1 complaint\x00" + REF.encode() + b"\x00handle"

    def blob(plain: bytes) -> str:
        return base64.b64encode(b"\x01" + suite.encrypt(zlib.compress(plain), KEY.public_key(), info=info)).decode()
    with pytest.raises(SealedDetailsError, match="inflate past"):
        open_details(KEY, REF, "handle", blob(b'{"a":"' + b"x" * (pc.MAX_PLAIN_BYTES + 10) + b'"}'))
    with pytest.raises(SealedDetailsError, match="must be an object"):
        open_details(KEY, REF, "handle", blob(b'["a"]'))
    with pytest.raises(SealedDetailsError, match="nested"):
        open_details(KEY, REF, "handle", blob(b"[" * 50 + b"]" * 50))
    with pytest.raises(SealedDetailsError, match="not valid UTF-8 JSON"):
        open_details(KEY, REF, "handle", blob(b"\xff\xfe"))
