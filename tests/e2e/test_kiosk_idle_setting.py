"""Issue 13 item 5 in real headless Chromium: screen.idle_timeout_seconds (not a URL parameter that
defaulted to 90 s) decides when the kiosk clears a half-filled form."""
from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_the_configured_idle_timeout_clears_the_kiosk_form(agent, browser, tmp_path):
    conf = tmp_path / "agent.toml"
    conf.write_text('[site]\nid = "BR-9"\n[screen]\nidle_timeout_seconds = 10\n', encoding="utf-8")
    agent.start("--config", str(conf))
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(agent.url)
    page.get_by_test_id("kiosk-enter").click()
    page.wait_for_url("**/kiosk")                       # no ?idle=: the configured value rules
    page.get_by_test_id("category-service_attitude").click()          # the form is a short wizard
    page.get_by_test_id("kiosk-next").click()
    page.get_by_test_id("field-description").fill("排队一个小时没人管")
    started = time.monotonic()
    expect(page.get_by_test_id("idle-warning")).to_be_visible(timeout=15000)
    # cleared: back on the first page, nothing chosen
    expect(page.get_by_test_id("field-description")).to_have_count(0, timeout=15000)
    expect(page.get_by_test_id("category-service_attitude")).to_have_attribute("aria-checked", "false")
    assert time.monotonic() - started < 30              # 10 s configured; the old default waited 90 s
    page.close()
