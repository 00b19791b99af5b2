"""The console in a real browser (headless Chromium through Selenium) against a real `herald serve` subprocess:
sign-in, approving and withdrawing held outcomes, pause and resume, resubmitting a dead letter, a candidate's
history, CSRF and roles, accessibility basics. Each page's screenshot is saved (browser_support.shots_dir: a temporary
directory, or docs/screenshots/ for the README with `make screenshots`).

One daemon and one browser serve the whole module (each test uses its own outcome ids)."""
from __future__ import annotations

import json
import secrets

import pytest

from browser_support import (MISSING, REPO, SHOTS_ENV, new_browser, screenshot, shots_dir, sign_in, unlabelled_controls,
                             wait_until)
from console_support import PASSWORDS, console_deployment
from daemon_support import ServeProcess, outbox, outcome, post

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(MISSING), reason=MISSING or "")]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = console_deployment(tmp_path_factory.mktemp("site"),
                              dispatch="{max_attempts: 3, backoff_base: 30s, poll_interval: 0.2s}")
    proc = ServeProcess(root)
    try:
        proc.wait_ready()
        yield root, proc.url
    finally:
        proc.stop()
        print(proc.log()[-6000:])  # shown when a test failed: the daemon's own account


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = new_browser(tmp_path_factory.mktemp("chromium"))
    try:
        yield driver
    finally:
        driver.quit()


def by_css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def as_user(driver, url: str, name: str) -> None:
    driver.delete_all_cookies()
    sign_in(driver, url, name, PASSWORDS[name])
    assert driver.current_url.endswith("/console/today"), driver.page_source[-1500:]


def sent_to(root, oid: str) -> list[dict]:
    return [m for m in outbox(root) if m["notification"].startswith(f"{oid}#")]


def submit(driver, button=None, action=None) -> None:
    """Clicks a submit button or a link (or does `action`) and waits until the next page has replaced this one and
    loaded.

    This page is marked first, and the wait asks the current document whether it is a loaded one without the mark.
    (It used to wait for the old <html> element to go stale: while Chromium swaps documents, asking about a node of
    the old one can fail with "Node with given id does not belong to the document" instead of a stale element,
    which failed the test on a loaded machine; a WebDriver error during the swap now means "not yet".)"""
    mark = secrets.token_hex(8)
    driver.execute_script("document.documentElement.setAttribute('data-left', arguments[0])", mark)
    button.click() if button is not None else action()
    wait_until(driver, lambda d: d.execute_script(
        "return document.readyState === 'complete' && document.documentElement.getAttribute('data-left') !== "
        "arguments[0]", mark), navigating=True)


def notice(driver) -> str:
    return wait_until(driver, lambda d: d.find_elements("css selector", "#notice, [role=alert]"))[0].text


def check_page(driver, name: str) -> None:
    """Every control labelled, then the screenshot for the README."""
    assert unlabelled_controls(driver) == [], name
    screenshot(driver, name)


def test_sign_in(browser, served):
    _root, url = served
    browser.delete_all_cookies()
    browser.get(url + "/console/today")
    assert browser.current_url.endswith("/console/login")
    check_page(browser, "sign-in")
    sign_in(browser, url, "ann", "wrong")
    assert "Wrong name or password" in by_css(browser, "[role=alert]").text
    as_user(browser, url, "ann")
    assert "ann" in by_css(browser, ".me").text


def test_screenshots_leave_the_tree_alone_unless_asked(browser, served, monkeypatch, tmp_path):
    """A test run writes its screenshots to a temporary directory; HERALD_SCREENSHOTS (`make screenshots`) names
    where the README's go."""
    _root, url = served
    readme = REPO / "docs" / "screenshots" / "sign-in.png"
    before = readme.stat().st_mtime_ns
    browser.delete_all_cookies()
    browser.get(url + "/console/login")
    monkeypatch.delenv(SHOTS_ENV, raising=False)
    path = screenshot(browser, "sign-in")
    assert REPO not in path.parents and path.is_file()
    assert readme.stat().st_mtime_ns == before
    monkeypatch.setenv(SHOTS_ENV, str(tmp_path / "asked"))
    assert screenshot(browser, "sign-in") == tmp_path / "asked" / "sign-in.png"
    assert (tmp_path / "asked" / "sign-in.png").stat().st_size > 5_000
    assert readme.stat().st_mtime_ns == before


def test_approve_a_held_outcome_and_its_message_reaches_the_outbox(browser, served):
    root, url = served
    assert post(url, [outcome("ok-1", approved=False, candidate={"name": "Bea", "email": "bea@example.com"})]
                ).status_code == 202
    as_user(browser, url, "ann")
    browser.get(url + "/console/approvals")
    card = by_css(browser, "#approvals")
    assert "Hello Bea" in card.text and "email" in card.text  # the exact message it would get, per channel
    check_page(browser, "approvals")
    submit(browser, by_css(browser, "button.approve-one[value='ok-1']"))
    assert "ok-1" in notice(browser)
    msgs = wait_until(browser, lambda d: sent_to(root, "ok-1"), timeout=30)
    assert msgs[0]["to"] == "bea@example.com" and "Hello Bea" in msgs[0]["body"]


def test_withdraw_a_held_outcome_and_it_is_never_sent(browser, served):
    root, url = served
    post(url, [outcome("no-1", approved=False, candidate={"name": "Cy", "email": "cy@example.com"})])
    as_user(browser, url, "ann")
    browser.get(url + "/console/approvals")
    by_css(browser, "#reason").send_keys("offer came through")
    by_css(browser, "input[name=id][value='no-1']").click()
    submit(browser, by_css(browser, "#withdraw-selected"))
    assert "no-1" in notice(browser)
    post(url, [outcome("after-no-1", candidate={"name": "Di", "email": "di@example.com"})])  # a later one goes out
    wait_until(browser, lambda d: sent_to(root, "after-no-1"), timeout=30)
    assert sent_to(root, "no-1") == []
    browser.get(url + "/console/candidates/no-1")
    assert by_css(browser, "#outcome-state").text == "withdrawn"
    assert "offer came through" in by_css(browser, "#timeline").text and "ann" in by_css(browser, "#timeline").text


def test_pause_and_resume_sending(browser, served):
    root, url = served
    as_user(browser, url, "root")
    browser.get(url + "/console/today")
    from selenium.webdriver.support.ui import Select

    Select(by_css(browser, "#pause-channel")).select_by_value("email")
    by_css(browser, "#pause-reason").send_keys("template fix")
    submit(browser, by_css(browser, "#pause"))
    notice(browser)
    assert "email" in by_css(browser, "#pauses").text
    check_page(browser, "today")
    post(url, [outcome("held-back", candidate={"name": "Ed", "email": "ed@example.com"})])  # email: paused
    post(url, [outcome("canary", candidate={"name": "Flo", "phone": "+8613900000000"})])   # sms only: goes out
    wait_until(browser, lambda d: sent_to(root, "canary"), timeout=30)
    assert sent_to(root, "held-back") == []
    Select(by_css(browser, "#pause-channel")).select_by_value("email")
    submit(browser, by_css(browser, "#resume"))
    notice(browser)
    assert not browser.find_elements("css selector", "#pauses")
    assert wait_until(browser, lambda d: sent_to(root, "held-back"), timeout=30)[0]["channel"] == "email"


def test_resubmit_a_fixed_dead_letter(browser, served):
    root, url = served
    bad = outcome("dl-1", decision="maybe", candidate={"name": "Gus", "email": "gus@example.com"})
    r = post(url, bad)
    assert r.status_code == 422
    dead = r.json()["dead_letter"]
    as_user(browser, url, "ann")
    browser.get(url + "/console/dead-letters")
    check_page(browser, "dead-letters")
    by_css(browser, f"a[href='/console/dead-letters/{dead}']").click()
    assert "decision" in by_css(browser, "#dead-reason").text
    check_page(browser, "dead-letter")
    body = by_css(browser, "#body")
    body.clear()
    body.send_keys(json.dumps({**bad, "decision": "reject"}))
    submit(browser, by_css(browser, "#resubmit"))
    assert "dl-1 (matched)" in notice(browser)
    assert wait_until(browser, lambda d: sent_to(root, "dl-1"), timeout=30)[0]["to"] == "gus@example.com"


def test_find_a_candidates_history(browser, served):
    root, url = served
    post(url, [outcome("hist-1", candidate={"name": "Hana Kobayashi", "email": "hana@example.com"})])
    wait_until(browser, lambda d: sent_to(root, "hist-1"), timeout=30)
    as_user(browser, url, "vic")
    browser.get(url + "/console/candidates")
    by_css(browser, "#q").send_keys("hana@example")
    submit(browser, by_css(browser, "#search"))
    wait_until(browser, lambda d: d.find_elements("css selector", "#found"))
    check_page(browser, "candidates")
    submit(browser, by_css(browser, "a[href='/console/candidates/hist-1']"))
    timeline = by_css(browser, "#timeline").text
    assert "outcome received" in timeline and "queued" in timeline and "sent" in timeline
    assert "Hana Kobayashi" in browser.title or "Hana Kobayashi" in by_css(browser, "h1").text
    check_page(browser, "history")


def test_a_form_posted_without_its_csrf_token_is_refused(browser, served):
    _root, url = served
    post(url, [outcome("csrf-1", approved=False)])
    as_user(browser, url, "ann")
    browser.get(url + "/console/approvals")
    browser.execute_script("document.querySelector('#approvals input[name=csrf]').remove()")
    submit(browser, by_css(browser, "button.approve-one[value='csrf-1']"))
    assert "did not come from this console" in notice(browser)
    browser.get(url + "/console/candidates/csrf-1")
    assert by_css(browser, "#outcome-status").text == "held"


def test_a_viewers_approve_is_refused(browser, served):
    _root, url = served
    post(url, [outcome("vic-1", approved=False)])
    as_user(browser, url, "vic")
    browser.get(url + "/console/approvals")
    assert not browser.find_elements("css selector", "button.approve-one")  # no buttons for a viewer
    submit(browser, action=lambda: browser.execute_script("""  // the viewer forges the approve form, with a valid CSRF token
      const f = document.createElement('form'); f.method = 'post'; f.action = '/console/approvals';
      for (const [k, v] of [['csrf', document.querySelector('input[name=csrf]').value], ['approve_one', 'vic-1']]) {
        const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); }
      document.body.appendChild(f); f.submit();"""))
    assert "does not allow" in notice(browser)
    browser.get(url + "/console/candidates/vic-1")
    assert by_css(browser, "#outcome-status").text == "held"


def test_keyboard_only_approve(browser, served):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    root, url = served
    post(url, [outcome("kb-1", approved=False, candidate={"name": "Ivo", "email": "ivo@example.com"})])
    as_user(browser, url, "ann")
    browser.get(url + "/console/approvals?only=kb-1")
    target = by_css(browser, "button.approve-one[value='kb-1']")
    for _ in range(200):  # Tab through the page until the approve button has the focus
        if browser.switch_to.active_element == target:
            break
        ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element == target
    submit(browser, action=ActionChains(browser).send_keys(Keys.ENTER).perform)
    assert "kb-1" in notice(browser)
    assert wait_until(browser, lambda d: sent_to(root, "kb-1"), timeout=30)


def test_every_page_has_labelled_controls_and_a_screenshot(browser, served):
    _root, url = served
    post(url, [outcome("um-1", decision="pass", candidate={"name": "Jo", "email": "jo@example.com"})])  # no rule
    as_user(browser, url, "root")
    for page, name in (("unmatched", "unmatched"), ("unmatched?outcome=um-1&rule=now", "unmatched-preview"),
                       ("replies", "replies"), ("rules", "rules"), ("preview?rule=now&locale=en&channel=sms", "preview"),
                       ("report", "report")):
        browser.get(f"{url}/console/{page}")
        assert "Error" not in browser.title, browser.page_source[-1500:]
        check_page(browser, name)
    browser.get(f"{url}/console/preview?rule=now&locale=en&channel=sms")
    assert "SMS segments: 1" in by_css(browser, "#rendered").text
    browser.get(f"{url}/console/report")
    browser.switch_to.frame(by_css(browser, "#report"))
    assert by_css(browser, "#report-table")  # engine.report's page, with its table and charts
    browser.switch_to.default_content()


def test_phone_layout_and_chinese(tmp_path, served):
    _root, url = served
    post(url, [outcome("phone-1", approved=False, candidate={"name": "王芳", "email": "wang@example.com"})])
    phone = new_browser(tmp_path, lang="zh-CN", phone=True)
    try:
        as_user(phone, url, "ann")
        phone.get(url + "/console/approvals")
        assert "待审批" in phone.page_source and "王芳" in phone.page_source
        assert phone.execute_script("return window.innerWidth") == 390
        assert phone.execute_script("return document.documentElement.scrollWidth") <= 390  # no sideways scroll
        phone.save_screenshot(str(shots_dir() / "approvals-phone-zh.png"))
    finally:
        phone.quit()


def test_the_impact_of_a_rule_change(browser, served):
    """The Impact page: the rule file in use is shown to edit; the changed one is compared over the outcomes of the
    last days (what would now go to another rule), and an invalid one shows its located errors instead."""
    root, url = served
    post(url, [outcome("imp-1", candidate={"name": "Kai", "email": "kai@example.com"})])  # reject: rule `now`
    wait_until(browser, lambda d: sent_to(root, "imp-1"), timeout=30)
    as_user(browser, url, "vic")  # read-only: a viewer may compare
    browser.get(url + "/console/impact")
    rules = by_css(browser, "#rules")
    assert "id: now" in rules.get_attribute("value") and by_css(browser, "#name").get_attribute("value") == "10-rules.yaml"
    changed = rules.get_attribute("value").replace("match: {decision: hold}", "match: {decision: [hold, reject]}")
    browser.execute_script("arguments[0].value = arguments[1]", rules, changed)
    submit(browser, by_css(browser, "#compare"))
    assert "would be treated differently" in by_css(browser, "#impact-summary").text
    assert "now -> later" in by_css(browser, "#impact-moves").text
    assert by_css(browser, "#impact-examples").text.count("later") >= 1
    check_page(browser, "impact")
    browser.execute_script("arguments[0].value = arguments[1]", by_css(browser, "#rules"), "version: 1\nrules: [oops")
    submit(browser, by_css(browser, "#compare"))
    problems = by_css(browser, "#problems").text
    assert "10-rules.yaml" in problems and not browser.find_elements("css selector", "#impact")


def test_send_a_test_to_me_from_the_preview(browser, served):
    root, url = served
    as_user(browser, url, "ann")
    browser.get(url + "/console/preview?rule=now&locale=en&channel=email")
    submit(browser, by_css(browser, "#send-test"))
    assert "Test sent to ann@example.com" in notice(browser)
    mine = [m for m in outbox(root) if m["to"] == "ann@example.com"]
    assert len(mine) == 1 and mine[0]["subject"].startswith("[TEST] ") and mine[0]["meta"]["test"] is True
