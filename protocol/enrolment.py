"""A template enrolled at a branch, on its way to head office (docs/enrolment.md): HPKE-sealed (X25519,
HKDF-SHA256, AES-256-GCM) to head office's enrolment key and bound to the device, person, finger and hash,
so a blob moved to another entry does not open. The terminal seals; head office opens and redistributes."""
from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

_HPKE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_INFO = b"HTB1 enrolment\x00"


class EnrolmentError(ValueError):
    """An enrolled template head office cannot accept; the message names what is wrong."""


def _binding(device_id: str, body: dict) -> bytes:
    """What the sealed template belongs to: a blob moved to another entry does not open."""
    return _INFO + "/".join((device_id, body["person_id"], body["finger"], body["template_sha256"])).encode()


def seal_for_hq(template: bytes, hq_key: X25519PublicKey, device_id: str, body: dict) -> str:
    return base64.b64encode(_HPKE.encrypt(template, hq_key, info=_binding(device_id, body))).decode()


def open_at_hq(body: dict, hq_private: X25519PrivateKey, device_id: str) -> bytes:
    """Head office: the template of a synced `finger_enrolled` entry, checked against its hash."""
    try:
        sealed = base64.b64decode(body["template_for_hq"], validate=True)
        template = _HPKE.decrypt(sealed, hq_private, info=_binding(device_id, body))
    except (KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise EnrolmentError(f"finger_enrolled entry: template_for_hq missing or malformed ({exc!r})") from None
    except Exception:                 # InvalidTag and friends: another key, device or entry
        raise EnrolmentError("finger_enrolled entry: template_for_hq does not open for this device and entry") from None
    if hashlib.sha256(template).hexdigest() != body["template_sha256"]:
        raise EnrolmentError("finger_enrolled entry: the template does not match template_sha256")
    return template
