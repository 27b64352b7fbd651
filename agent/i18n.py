"""Message catalogs (zh-CN default, en): prompts for voice and screen, labels for the page."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("zh-CN", "en")
_DIR = Path(__file__).parent / "screen" / "i18n"
# bundle and USB messages live beside the code that raises them
_OFFLINE = Path(__file__).parent.parent / "offline" / "messages.json"


@lru_cache(maxsize=None)
def catalog(lang: str) -> dict:
    if lang not in LANGUAGES:
        raise ValueError(f"language '{lang}' is not one of {', '.join(LANGUAGES)}")
    out = json.loads((_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    out["prompts"].update(json.loads(_OFFLINE.read_text(encoding="utf-8"))[lang])
    kiosk = json.loads((_DIR / f"kiosk-{lang}.json").read_text(encoding="utf-8"))     # complaint kiosk (SPEC §6)
    out["ui"].update(kiosk["ui"])
    out["prompts"].update(kiosk["prompts"])
    records = json.loads((_DIR / f"records-{lang}.json").read_text(encoding="utf-8"))   # past handovers (issue 17)
    out["ui"].update(records["ui"])
    out["prompts"].update(records["prompts"])
    return out


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "—"


def render(key: str, params: dict, lang: str) -> str:
    """A prompt's text; a missing key shows the key itself so it is noticed, never crashes."""
    template = catalog(lang)["prompts"].get(key) or catalog("zh-CN")["prompts"].get(key, key)
    values = _Blank({k: "、".join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in params.items()})
    return template.format_map(values)


def label(key: str, lang: str) -> str:
    return catalog(lang)["ui"].get(key, key)
