"""The page's message catalogs (hq/web/i18n/<lang>.json): zh-CN by default, English available."""
from __future__ import annotations

import json
from functools import cache
from importlib import resources

LANGS = ("zh-CN", "en")
DEFAULT = "zh-CN"


@cache
def catalog(lang: str) -> dict[str, str]:
    return json.loads((resources.files("hq.web") / "i18n" / f"{lang}.json").read_text("utf-8"))


def pick(lang: str | None) -> str:
    return lang if lang in LANGS else DEFAULT


def render(key: str, params: dict | None = None, lang: str = DEFAULT) -> str:
    return catalog(pick(lang))[key].format(**(params or {}))


def alarm_kind(kind: str | None, lang: str = DEFAULT) -> str:
    key = f"kind_{kind}"
    return render(key if key in catalog(pick(lang)) else "kind_other", lang=lang)
