"""Head office's complaint key as it reaches a terminal in a provisioning bundle (protocol.complaint
.public_key_from_pem): only an X25519 public key in PEM passes; anything else — a private key above all,
and any bytes at all — is a ComplaintKeyError saying what is wrong."""
from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
import pytest

from protocol.complaint import ComplaintKeyError, public_key_from_pem

X = X25519PrivateKey.generate()
PUBLIC = X.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
PRIVATE = X.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def test_the_public_half_passes_as_bytes_or_text():
    raw = lambda k: k.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)  # noqa: E731
    assert raw(public_key_from_pem(PUBLIC)) == raw(X.public_key())
    assert raw(public_key_from_pem(PUBLIC.decode())) == raw(X.public_key())


@pytest.mark.parametrize("pem, says", [
    (PRIVATE, "PRIVATE key"),
    (PUBLIC + PRIVATE, "PRIVATE key"),             # a private key beside the public one is still refused
    (generate_private_key(SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), "not X25519"),
    (b"", "not a public key"),
])
def test_what_is_not_an_x25519_public_key_is_named(pem, says):
    with pytest.raises(ComplaintKeyError, match=says):
        public_key_from_pem(pem)


@given(st.binary(max_size=400) | st.text(max_size=400) | st.binary(max_size=200).map(
    lambda b: PUBLIC[:30] + b + PUBLIC[-26:]))
def test_any_bytes_are_a_public_key_or_a_named_refusal(data):
    try:
        key = public_key_from_pem(data)
    except ComplaintKeyError as exc:
        assert str(exc).startswith("the complaint key is")
    else:
        assert key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
