"""The kiosk's on-screen keyboard in real headless Chromium: the wall screen has no physical keyboard, so a
customer types the phone number on the 123 layer and Chinese through pinyin (shou → 收, fei → 费, words such
as 手续费), submits, and the complaint holds exactly that text. Only taps: no keyboard event is sent.
Screenshots in artifacts/e2e/kiosk-keyboard-*.png."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from agent.sample import DEMO_PASSWORD

pytestmark = pytest.mark.browser

DESCRIPTION = "收费太高，多收手续费。"
REQUEST = "退款\n道歉"


def open_kiosk(agent, browser):
    agent.start()
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(agent.url)
    page.get_by_test_id("kiosk-enter").click()
    page.wait_for_url("**/kiosk")
    expect(page.get_by_test_id("category-choices")).to_be_visible()
    return page


def tap(page, keys: str) -> None:
    for k in keys:
        page.get_by_test_id(f"kb-key-{k}").click()


def pick(page, text: str) -> None:
    """Taps a candidate, which must be on the candidate bar's first page."""
    page.get_by_test_id("kb-candidates").get_by_role("button", name=text, exact=True).click()


def pinyin(page, letters: str, text: str) -> None:
    tap(page, letters)
    expect(page.get_by_test_id("kb-pinyin")).to_have_text(letters)
    pick(page, text)
    expect(page.get_by_test_id("kb-pinyin")).to_have_text("")


def focus(page, testid: str):
    """Taps a field: the keyboard docks at the bottom and the field stays in sight above it."""
    page.get_by_test_id(testid).click()
    keyboard = page.get_by_test_id("keyboard")
    expect(keyboard).to_be_visible()
    field_box, kb_box = page.get_by_test_id(testid).bounding_box(), keyboard.bounding_box()
    assert 0 <= field_box["y"] and field_box["y"] + field_box["height"] <= kb_box["y"], (testid, field_box, kb_box)


def test_customer_types_chinese_and_a_phone_number_on_the_screen(agent, browser, artifacts):
    page = open_kiosk(agent, browser)
    keyboard = page.get_by_test_id("keyboard")
    expect(keyboard).to_be_hidden()
    page.get_by_test_id("category-irregular_fees").click()
    page.get_by_test_id("kiosk-next").click()                          # the form is a short wizard

    focus(page, "field-description")
    expect(keyboard).to_have_attribute("data-mode", "zh")
    expect(keyboard).to_have_attribute("data-layer", "letters")          # a new field starts on the letters
    for key in keyboard.locator("button:visible").element_handles():     # big enough for a finger
        box = key.bounding_box()
        assert box["height"] >= 56 and box["width"] >= 44, key.evaluate("e => e.outerHTML.slice(0, 80)")
    tap(page, "shoi")
    page.get_by_test_id("kb-backspace").click()                          # backspace edits the pinyin first
    tap(page, "u")
    expect(page.get_by_test_id("kb-pinyin")).to_have_text("shou")
    expect(page.get_by_test_id("kb-cand-0")).to_be_visible()
    page.screenshot(path=str(artifacts("e2e/kiosk-keyboard-02-pinyin.png")))
    pick(page, "收")
    pinyin(page, "fei", "费")
    pinyin(page, "tai", "太")
    pinyin(page, "gao", "高")
    tap(page, "，")
    tap(page, "duoshou")
    expect(page.get_by_test_id("kb-cand-0")).to_have_text("多收")       # a two-syllable word comes first
    pick(page, "多收")
    pinyin(page, "shouxufei", "手续费")
    tap(page, "。")
    expect(page.get_by_test_id("field-description")).to_have_value(DESCRIPTION)

    # paging through a long candidate list, then backspace clears the pinyin
    tap(page, "ji")
    first = page.get_by_test_id("kb-cand-0").text_content()
    page.get_by_test_id("kb-next").click()
    expect(page.get_by_test_id("kb-cand-8")).to_be_visible()
    expect(page.get_by_test_id("kb-cand-0")).to_have_count(0)
    page.get_by_test_id("kb-prev").click()
    expect(page.get_by_test_id("kb-cand-0")).to_have_text(first)
    page.get_by_test_id("kb-backspace").click()
    page.get_by_test_id("kb-backspace").click()
    expect(page.get_by_test_id("kb-pinyin")).to_have_text("")
    expect(page.get_by_test_id("kb-candidates").get_by_role("button")).to_have_count(0)
    expect(page.get_by_test_id("field-description")).to_have_value(DESCRIPTION)

    focus(page, "field-request")
    pinyin(page, "tuikuan", "退款")
    page.get_by_test_id("kb-enter").click()                              # a new line in a textarea
    pinyin(page, "daoqian", "道歉")
    expect(page.get_by_test_id("field-request")).to_have_value(REQUEST)
    page.get_by_test_id("kb-hide").click()
    page.get_by_test_id("kiosk-next").click()

    focus(page, "field-contact")
    page.get_by_test_id("kb-layer").click()
    expect(keyboard).to_have_attribute("data-layer", "symbols")
    tap(page, "13912345678")
    expect(page.get_by_test_id("field-contact")).to_have_value("13912345678")
    page.screenshot(path=str(artifacts("e2e/kiosk-keyboard-01-digits.png")))

    focus(page, "field-name")                                            # English letters, with shift
    page.get_by_test_id("kb-mode").click()
    expect(keyboard).to_have_attribute("data-mode", "en")
    page.get_by_test_id("kb-shift").click()
    tap(page, "li")
    page.get_by_test_id("kb-mode").click()
    expect(page.get_by_test_id("field-name")).to_have_value("Li")
    page.screenshot(path=str(artifacts("e2e/kiosk-keyboard-03-form.png")))

    page.get_by_test_id("kb-hide").click()
    expect(keyboard).to_be_hidden()
    page.get_by_test_id("privacy-consent").click()                      # a name is given: consent to its use
    page.get_by_test_id("kiosk-submit").click()
    expect(page.get_by_test_id("receipt-text")).to_contain_text("受理编号：")
    page.get_by_test_id("receipt-done").click()

    # staff read the stored complaint; the password too is typed on the screen, never through pinyin
    page.get_by_test_id("kiosk-staff").click()
    page.get_by_test_id("password-officer").select_option("O01")
    focus(page, "password-input")
    expect(keyboard).to_have_attribute("data-mode", "en")
    page.get_by_test_id("kb-layer").click()
    tap(page, DEMO_PASSWORD)
    page.screenshot(path=str(artifacts("e2e/kiosk-keyboard-04-password.png")))
    page.get_by_test_id("password-submit").click()
    card = page.locator(".complaint").first
    expect(card).to_be_visible()
    values = card.locator("dd").all_text_contents()
    assert DESCRIPTION in values and REQUEST in values and "13912345678" in values and "Li" in values, values
    page.screenshot(path=str(artifacts("e2e/kiosk-keyboard-05-staff-view.png")), full_page=True)
