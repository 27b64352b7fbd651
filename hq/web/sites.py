"""Site names for the page and the voice ("城东支行" rather than "BR-001"): a JSON file given with
`handover-hq serve --sites FILE`, `{"BR-001": "城东支行", ...}`. Outside bytes: checked whole, and a bad
file is refused with a message naming what is wrong (nothing is half-loaded)."""
from __future__ import annotations

from protocol import safejson

MAX_BYTES = 1024 * 1024
MAX_LEN = 64


class SitesError(ValueError):
    """The sites file cannot be used; the text says where and why."""


def parse_sites(raw: bytes) -> dict[str, str]:
    try:
        value = safejson.loads(raw, max_depth=2, max_bytes=MAX_BYTES)
    except safejson.JsonRefused as exc:
        raise SitesError(f"sites file is {exc}") from None
    if not isinstance(value, dict):
        raise SitesError("sites file must be a JSON object of site id -> name")
    for i, (site, name) in enumerate(value.items()):
        if not site or len(site) > MAX_LEN or not site.isprintable():
            raise SitesError(f"sites file: key number {i + 1} is not a site id (1-{MAX_LEN} printable characters)")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_LEN or not name.isprintable():
            raise SitesError(f"sites file: the name of {site!r} must be 1-{MAX_LEN} printable characters")
    return dict(value)
