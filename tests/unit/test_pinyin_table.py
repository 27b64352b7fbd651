"""The kiosk keyboard's candidate table (agent/screen/static/pinyin.json, made by tools/make_pinyin_table.py):
well-formed, ranked so the characters a customer means come first, only common CJK characters, and small
enough to serve to the kiosk page."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

TABLE = Path(__file__).resolve().parents[2] / "agent" / "screen" / "static" / "pinyin.json"
HAN = re.compile(r"^[\u4e00-\u9fff]+$")
PINYIN = re.compile(r"^[a-z]+$")


@pytest.fixture(scope="module")
def table() -> dict:
    return json.loads(TABLE.read_text(encoding="utf-8"))


def chars_of(table: dict, syllable: str) -> list[str]:
    return [c for c, s in table["chars"] if s == syllable]


def test_well_formed(table):
    assert set(table) == {"about", "chars", "words"}
    for c, syl in table["chars"]:
        assert len(c) == 1 and HAN.match(c) and PINYIN.match(syl), (c, syl)
    for w, key in table["words"]:
        assert 2 <= len(w) <= 4 and HAN.match(w) and PINYIN.match(key), (w, key)
    assert len(table["chars"]) == len({(c, s) for c, s in table["chars"]}), "a reading is listed twice"


def test_common_characters_only_and_enough_of_them(table):
    chars = {c for c, _ in table["chars"]}
    assert 3500 <= len(chars) <= 4500
    for c in chars:
        c.encode("gb2312")                      # simplified: no 們 or 這 among the candidates
    assert {w for w, _ in table["words"]} and all(set(w) <= chars for w, _ in table["words"])


def test_frequent_characters_rank_first(table):
    assert {"收", "手"} <= set(chars_of(table, "shou")[:5])
    assert chars_of(table, "fei")[:3].count("费") == 1
    assert chars_of(table, "de")[0] == "的"
    assert chars_of(table, "ni")[0] == "你"
    # a polyphonic character ranks by the reading: 还 is mostly hai, and still offered under huan
    assert chars_of(table, "hai")[0] == "还"
    assert "还" in chars_of(table, "huan") and chars_of(table, "huan")[0] != "还"
    assert "绿" in chars_of(table, "lv")           # ü is typed as v


def test_words_by_joined_pinyin(table):
    words = {}
    for w, key in table["words"]:
        words.setdefault(key, []).append(w)
    assert words["shoufei"][0] == "收费"
    assert words["yinhang"][0] == "银行"               # 行 read hang inside 银行
    for key, word in [("shouxufei", "手续费"), ("tuikuan", "退款"), ("guitai", "柜台")]:
        assert word in words[key]                       # a bank complaint's vocabulary is there


def test_size_budget():
    assert TABLE.stat().st_size < 400 * 1024
