"""The enrolled template's way to head office (agent.enrolment seals, protocol.enrolment opens): HPKE-sealed to head office's key and bound
to device, person, finger and hash; whatever a synced entry holds, opening it either gives the very template
or a clear error naming what is wrong."""
from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.enrolment import HQ_KEY_FILE, load_hq_key
from protocol.enrolment import EnrolmentError, open_at_hq, seal_for_hq
from protocol.keys import public_pem

HQ = X25519PrivateKey.generate()
TEMPLATE = bytes(range(256)) * 2


def entry(template=TEMPLATE, person="E01", finger="right_middle", device="D1", key=HQ.public_key()):
    body = {"person_id": person, "finger": finger, "template_sha256": hashlib.sha256(template).hexdigest()}
    return body | {"template_for_hq": seal_for_hq(template, key, device, body)}


def test_head_office_opens_the_template_it_was_sealed_for():
    assert open_at_hq(entry(), HQ, "D1") == TEMPLATE


@pytest.mark.parametrize("change,why", [
    ({"person_id": "E02"}, "does not open"), ({"finger": "left_index"}, "does not open"),
    ({"template_sha256": "0" * 64}, "does not open"), ({"template_for_hq": None}, "missing or malformed"),
    ({"template_for_hq": "not base64!"}, "missing or malformed")])
def test_a_blob_moved_to_another_entry_or_damaged_is_refused(change, why):
    with pytest.raises(EnrolmentError, match=why):
        open_at_hq(entry() | change, HQ, "D1")


def test_another_device_or_key_does_not_open_it():
    with pytest.raises(EnrolmentError, match="does not open"):
        open_at_hq(entry(), HQ, "D2")
    with pytest.raises(EnrolmentError, match="does not open"):
        open_at_hq(entry(), X25519PrivateKey.generate(), "D1")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["person_id", "finger", "template_sha256", "template_for_hq", "x"]),
                       st.one_of(st.text(max_size=80), st.binary(max_size=80), st.none(), st.integers())))
def test_any_entry_body_opens_or_is_refused_clearly(body):
    try:
        open_at_hq(body, HQ, "D1")
    except EnrolmentError as exc:
        assert "finger_enrolled entry" in str(exc)
    else:
        raise AssertionError("a body nobody sealed opened")


def test_a_missing_or_wrong_head_office_key_leaves_enrolment_working_without_it(tmp_path):
    assert load_hq_key(tmp_path) is None
    (tmp_path / HQ_KEY_FILE).write_text("garbage")
    assert load_hq_key(tmp_path) is None
    (tmp_path / HQ_KEY_FILE).write_bytes(public_pem(HQ.public_key()))
    assert load_hq_key(tmp_path).public_bytes_raw() == HQ.public_key().public_bytes_raw()
