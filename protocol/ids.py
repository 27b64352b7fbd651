"""Device and site ids: they become MQTT topic levels and certificate names, so both sides check them alike."""
from __future__ import annotations

ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
ID_WHAT = 'letters, digits, ".", "_" or "-" (no "+", "#", "/" or spaces), at most 64'
