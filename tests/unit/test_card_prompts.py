"""What the screen says when a box tag is refused or lifted too soon (issue 18)."""
import pytest

from agent.i18n import render
from agent.terminal import prompt_key

TAG = "04DE5F1EACC040"


@pytest.mark.parametrize("reason, zh, en", [
    ("no_ndef_app", "未出示防伪信息", "no anti-clone message"),
    ("read_error", "未出示防伪信息", "no anti-clone message"),
    ("no_sun", "未出示防伪信息", "no anti-clone message"),
    ("replayed", "防伪信息是旧的", "an old anti-clone message"),
    ("bad_mac", "防伪校验失败", "failed its anti-clone check"),
])
def test_the_cloned_tag_alarm_says_what_the_tag_did(reason, zh, en):
    detail = {"tag": TAG, "reason": reason}
    key = prompt_key("alarm_cloned_tag", detail)
    assert zh in render(key, detail, "zh-CN") and TAG in render(key, detail, "zh-CN")
    assert en in render(key, detail, "en")


def test_a_half_read_asks_for_the_tag_again():
    assert render("card_present_again", {}, "zh-CN") == "读卡未完成，请重新刷卡"
    assert "present it again" in render("card_present_again", {}, "en")
