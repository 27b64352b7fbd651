"""Screen and voice text comes from the catalogs: every key in both languages, every key the pages use."""
from __future__ import annotations

import io
import json
import re
import tokenize
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


def test_the_report_text_has_no_chinese_in_code():
    """agent/report_text.py kept its own word tables; the words live in the catalogs now, both languages."""
    source = STATIC.parents[1] / "report_text.py"
    strings = [t.string for t in tokenize.generate_tokens(io.StringIO(source.read_text(encoding="utf-8")).readline)
               if t.type == tokenize.STRING]
    assert strings and not [s for s in strings if re.search(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]", s)]
    for lang in LANGUAGES:
        words = [k for k in catalog(lang)["ui"] if k.startswith("report.line.")]
        assert {"report.line.title", "report.line.site", "report.line.escort_lead"} <= set(words), lang
