"""Screen and voice text comes from the catalogs: every key in both languages, every key the pages use."""
from __future__ import annotations

import json
import re
from pathlib import Path

from agent.i18n import LANGUAGES, catalog

STATIC = Path(__file__).resolve().parents[2] / "agent" / "screen" / "static"


def test_both_languages_have_the_same_keys():
    zh, en = catalog("zh-CN"), catalog("en")
    for section in ("prompts", "ui"):
        assert set(zh[section]) - set(en[section]) == set(), f"{section}: missing in en"
        assert set(en[section]) - set(zh[section]) == set(), f"{section}: missing in zh-CN"


def test_every_literal_key_the_pages_use_is_in_the_catalogs():
    used = set()
    for js in STATIC.glob("*.js"):
        used |= set(re.findall(r'\bt\("([a-z_][\w.]*[a-z_])"', js.read_text(encoding="utf-8")))   # not prefixes ("step." + s)
    for html in STATIC.glob("*.html"):
        used |= set(re.findall(r'data-i18n="([\w.]+)"', html.read_text(encoding="utf-8")))
    assert used, "the pattern found the pages' keys"
    for lang in LANGUAGES:
        missing = sorted(k for k in used if k not in catalog(lang)["ui"])
        assert missing == [], f"{lang}: {missing}"


def test_no_password_offered_in_a_prompt_that_has_no_field():
    # issue 14: "（或输入密码）" was spoken and shown where the site allows no password
    prompts = json.loads((STATIC.parent / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))["prompts"]
    assert "密码" not in prompts["officer_auth_needed"]
    assert "密码" not in prompts["now_sign_disposition"] and "密码" in prompts["now_sign_disposition_pw"]
