"""The console over HTTP against a real daemon: sign-in and sessions, cookie flags, CSRF, roles, the sign-in limit,
and `herald serve` refusing an unguarded console on a network address."""
from __future__ import annotations

import re

import pytest

from console_support import PASSWORDS, client, console_deployment, console_yaml, csrf_of, sign_in
from daemon_support import make_deployment
from engine.config.deployment import load_deployment
from engine.daemon import Daemon, DaemonError

pytestmark = pytest.mark.slow


def test_pages_need_a_sign_in_and_a_good_password(tmp_path, daemons):
    d = daemons(console_deployment(tmp_path))
    with client(d.url) as c:
        r = c.get("/console/today")
        assert r.status_code == 303 and r.headers["location"] == "/console/login"
        bad = sign_in(c, "ann", "wrong")
        assert bad.status_code == 401 and "Wrong name or password" in bad.text
        assert sign_in(c, "nobody", "x").status_code == 401
        ok = sign_in(c, "ann")
        assert ok.status_code == 303 and ok.headers["location"] == "/console/today"
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie  # plain http on loopback, no trusted proxy
        page = c.get("/console/today")
        assert page.status_code == 200 and "ann" in page.text and "approver" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        out = c.post("/console/logout", data={"csrf": csrf_of(page.text)})
        assert out.status_code == 303
        assert c.get("/console/today").status_code == 303


def test_a_post_without_the_csrf_token_is_refused(tmp_path, daemons):
    d = daemons(console_deployment(tmp_path))
    with client(d.url) as c:
        c.get("/console/login")
        r = c.post("/console/login", data={"name": "ann", "password": PASSWORDS["ann"]})
        assert r.status_code == 403 and "Wrong" not in r.text
        other = client(d.url)
        token = csrf_of(other.get("/console/login").text)  # another browser's token
        r = c.post("/console/login", data={"csrf": token, "name": "ann", "password": PASSWORDS["ann"]})
        assert r.status_code == 403
        assert sign_in(c, "ann").status_code == 303
        r = c.post("/console/logout", data={})
        assert r.status_code == 403 and c.get("/console/today").status_code == 200  # still signed in


def test_secure_cookie_behind_a_trusted_https_proxy_only(tmp_path, daemons):
    d = daemons(console_deployment(tmp_path, extra="trusted_proxy: true"))
    with client(d.url, headers={"X-Forwarded-Proto": "https"}) as c:
        assert "Secure" in sign_in(c, "ann").headers["set-cookie"]
    with client(d.url) as c:  # plain http
        assert "Secure" not in sign_in(c, "ann").headers["set-cookie"]


def test_an_untrusted_forwarded_proto_is_ignored():
    """From an address that is not a trusted proxy (uvicorn trusts loopback only), the header counts for nothing."""
    from types import SimpleNamespace

    from starlette.requests import Request

    from engine.config.console import ConsoleSettings
    from engine.console.web import Console

    def request(scheme: str) -> Request:
        return Request({"type": "http", "scheme": scheme, "method": "GET", "path": "/console/login",
                        "headers": [(b"x-forwarded-proto", b"https")], "client": ("203.0.113.9", 5000),
                        "server": ("herald", 80), "query_string": b""})

    def console(trusted: bool) -> Console:
        config = SimpleNamespace(console=ConsoleSettings(trusted_proxy=trusted))
        return Console(SimpleNamespace(state=SimpleNamespace(deployment=SimpleNamespace(config=config))))

    assert not console(False).secure(request("http")) and console(False).secure(request("https"))
    assert console(True).secure(request("http"))


def test_failed_sign_ins_are_rate_limited(tmp_path, daemons):
    d = daemons(console_deployment(tmp_path, extra="max_failures: 3"))
    with client(d.url) as c:
        for _ in range(3):
            assert sign_in(c, "ann", "wrong").status_code == 401
        locked = sign_in(c, "ann")  # the right password, but too late
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        assert sign_in(c, "vic").status_code == 303  # another account is not locked


def test_the_session_follows_the_account_in_herald_yaml(tmp_path, daemons):
    """A role comes from herald.yaml at each request; a removed account's cookie no longer works."""
    root = console_deployment(tmp_path)
    d = daemons(root, watch=False)
    with client(d.url) as c:
        assert sign_in(c, "ann").status_code == 303
        text = (root / "herald.yaml").read_text()
        (root / "herald.yaml").write_text(text.split("console:")[0] + console_yaml({"vic": "viewer"}))
        from engine.daemon.reload import reload

        assert reload(d.runtime, "test")
        assert c.get("/console/today").status_code == 303


def test_language_follows_the_browser(tmp_path, daemons):
    d = daemons(console_deployment(tmp_path))
    with client(d.url, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}) as c:
        assert "登录" in c.get("/console/login").text
    with client(d.url, headers={"Accept-Language": "en-GB"}) as c:
        assert "Sign in" in c.get("/console/login").text


def test_no_accounts_on_loopback_is_the_anonymous_admin(tmp_path, daemons):
    d = daemons(make_deployment(tmp_path))
    with client(d.url) as c:
        page = c.get("/console/today")
        assert page.status_code == 200 and "anonymous" in page.text


def test_serve_refuses_the_console_without_accounts_on_a_network_address(tmp_path, monkeypatch):
    monkeypatch.setenv("HERALD_TEST_TOKEN", "test-token-0123456")
    monkeypatch.setenv("HERALD_TEST_SECRET", "test-hmac-secret")
    root = make_deployment(tmp_path, auth=True)
    with pytest.raises(DaemonError, match=r"console on 0\.0\.0\.0 without accounts"):
        Daemon(load_deployment([str(root)]), paths=[str(root)], host="0.0.0.0", port=0, watch=False)
    with (root / "herald.yaml").open("a") as f:
        f.write("console: {enabled: false}\n")
    Daemon(load_deployment([str(root)]), paths=[str(root)], host="0.0.0.0", port=0, watch=False)._abort()


def test_a_reload_that_drops_the_accounts_on_a_network_address_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HERALD_TEST_TOKEN", "test-token-0123456")
    monkeypatch.setenv("HERALD_TEST_SECRET", "test-hmac-secret")
    root = console_deployment(tmp_path, auth=True)
    d = Daemon(load_deployment([str(root)]), paths=[str(root)], host="0.0.0.0", port=0, watch=False)
    try:
        text = (root / "herald.yaml").read_text()
        (root / "herald.yaml").write_text(text.split("console:")[0])
        from engine.daemon.reload import reload

        assert not reload(d.runtime, "test")
        assert "without accounts" in " ".join(d.runtime.last_reload_error)
    finally:
        d._abort()


def test_the_console_is_off_when_disabled(tmp_path, daemons):
    root = make_deployment(tmp_path)
    with (root / "herald.yaml").open("a") as f:
        f.write("console: {enabled: false}\n")
    d = daemons(root)
    with client(d.url) as c:
        assert c.get("/console/today").status_code == 404


def test_static_assets_are_served_by_herald(tmp_path, daemons):
    d = daemons(make_deployment(tmp_path))
    with client(d.url) as c:
        assert c.get("/console/static/console.css").headers["content-type"].startswith("text/css")
        assert c.get("/console/static/../console.py").status_code == 404
        assert c.get("/console/static/nothing.css").status_code == 404


def _form(c, page: str, **fields: str):
    return c.post(page, data={"csrf": csrf_of(c.get(page).text), **fields})


def test_roles_decide_what_a_form_may_do(tmp_path, daemons):
    """A viewer reads but cannot approve; an approver cannot pause sending; an admin can."""
    from daemon_support import outcome, post

    d = daemons(console_deployment(tmp_path))
    post(d.url, [outcome("r-1", approved=False)])
    with client(d.url) as viewer, client(d.url) as approver, client(d.url) as admin:
        sign_in(viewer, "vic"), sign_in(approver, "ann"), sign_in(admin, "root")
        assert viewer.get("/console/approvals").status_code == 200
        r = _form(viewer, "/console/approvals", approve_one="r-1")
        assert r.status_code == 403 and "viewer" in r.text
        assert d.runtime.store.get_outcome("r-1").status == "held"
        assert _form(approver, "/console/today", do="pause").status_code == 403
        assert d.runtime.store.pauses() == []
        r = _form(admin, "/console/today", do="pause", channel="sms", reason="maintenance")
        assert r.status_code == 200 and [p.channel for p in d.runtime.store.pauses()] == ["sms"]
        r = _form(approver, "/console/approvals", approve_one="r-1", reason="checked")
        assert r.status_code == 200 and d.runtime.store.get_outcome("r-1").approved
        audit = d.runtime.store.audit_for("r-1")
        assert [(a.action, a.actor, a.reason) for a in audit] == [("approve", "ann", "checked")]


def test_refused_actions_say_why_and_change_nothing(tmp_path, daemons):
    d = daemons(console_deployment(tmp_path))
    with client(d.url) as c:
        sign_in(c, "ann")
        r = _form(c, "/console/approvals", approve_one="nobody")
        assert r.status_code == 409 and "no outcome" in r.text
        r = _form(c, "/console/unmatched", outcome="nobody", rule="now")
        assert r.status_code == 409 and "no outcome" in r.text
        assert c.get("/console/candidates/nobody").status_code == 404
        assert c.get("/console/dead-letters/999").status_code == 404
        assert c.get("/console/candidates?q=" + "x" * 300).status_code == 422
        assert c.get("/console/preview?rule=now&sample=%7B").status_code == 422


def test_untrusted_text_is_escaped(tmp_path, daemons):
    from daemon_support import outcome, post

    d = daemons(console_deployment(tmp_path))
    post(d.url, [outcome("x-1", approved=False, candidate={"name": "<script>alert(1)</script>",
                                                           "email": "x@example.com"})])
    with client(d.url) as c:
        sign_in(c, "vic")
        for page in ("/console/approvals", "/console/candidates/x-1", "/console/candidates?q=x-1"):
            text = c.get(page).text
            assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)" in text, page


def test_route_cancel_reschedule_send_now_and_mark_handled(tmp_path, daemons):
    """The other forms: route an unmatched outcome by hand, cancel / reschedule / send now a queued message,
    mark a reply handled; each done through engine.desk and recorded with the signed-in name."""
    from daemon_support import outcome, post

    d = daemons(console_deployment(tmp_path))
    store = d.runtime.store
    store.pause_sending(None, "test")  # nothing goes out while the forms act on the queue
    post(d.url, [outcome("um-1", decision="pass"), outcome("q-1", decision="hold"), outcome("q-2", decision="hold"),
                 outcome("q-3", decision="hold")])
    with client(d.url) as c:
        sign_in(c, "ann")
        preview = c.get("/console/unmatched?outcome=um-1&rule=now")
        assert preview.status_code == 200 and "Hello Ann" in preview.text
        r = _form(c, "/console/unmatched", outcome="um-1", rule="now", reason="by hand")
        assert r.status_code == 200 and "um-1" in r.text and store.notifications_for("um-1")
        assert _form(c, "/console/candidates/q-1", do="cancel", notification="q-1#1").status_code == 200
        assert store.get_notification("q-1#1").notification.state == "cancelled"
        before = store.get_notification("q-2#1").notification
        from datetime import datetime
        from zoneinfo import ZoneInfo

        at = datetime.fromtimestamp(d.runtime.now() + 2 * 86400, ZoneInfo("Asia/Shanghai")).replace(second=0,
                                                                                                  microsecond=0)
        r = _form(c, "/console/candidates/q-2", do="reschedule", notification="q-2#1",
                  at=at.replace(tzinfo=None).isoformat(timespec="minutes"))
        assert r.status_code == 200, re.findall(r"id=.error.>([^<]*)", r.text)
        moved = store.get_notification("q-2#1").notification
        assert moved.next_attempt_at == at.timestamp() != before.next_attempt_at  # the console's zone
        assert _form(c, "/console/candidates/q-3", do="send_now", notification="q-3#1").status_code == 200
        assert store.get_notification("q-3#1").notification.next_attempt_at <= d.runtime.now()
        assert _form(c, "/console/candidates/q-3", do="reschedule", notification="q-3#1",
                     at="not a time").status_code == 409
        reply = store.add_reply("q-3#1", "Thanks, can I get feedback?")
        assert "Thanks, can I get feedback?" in c.get("/console/replies").text
        assert _form(c, "/console/replies", reply=str(reply)).status_code == 200
        assert store.get_reply(reply).handled_at is not None
        actions = {(a.action, a.actor) for oid in ("um-1", "q-1", "q-2", "q-3") for a in store.audit_for(oid)}
        assert {("route", "ann"), ("cancel", "ann"), ("reschedule", "ann"), ("send_now", "ann")} <= actions


def test_send_a_test_to_me_goes_to_the_operator_only_and_is_never_counted(tmp_path, daemons):
    """Preview's "send a test to me": the rendered message goes through the channel's real transport (the outbox
    here) to the signed-in operator's own e-mail address, marked as a test, recorded in the audit log as a test;
    no notification, attempt or event is stored, so the report counts nothing. A viewer may not; a channel the
    account has no address for is refused."""
    from daemon_support import outbox

    d = daemons(console_deployment(tmp_path))
    store = d.runtime.store
    with client(d.url) as c, client(d.url) as viewer:
        sign_in(c, "ann"), sign_in(viewer, "vic")
        page = c.get("/console/preview?rule=now&locale=en&channel=email")
        assert page.status_code == 200 and 'id="send-test"' in page.text and "ann@example.com" in page.text
        fields = {"rule": "now", "locale": "en", "outcome": "", "sample": re.search(
            r'<textarea id="sample" name="sample"[^>]*>([^<]*)</textarea>', page.text).group(1).replace("&#34;", '"')}
        r = c.post("/console/preview/test", data={"csrf": csrf_of(page.text), "test_channel": "email", **fields})
        assert r.status_code == 200 and "Test sent to ann@example.com" in r.text, r.text[-2000:]
        [sent] = outbox(tmp_path)
        assert sent["to"] == "ann@example.com" and sent["subject"].startswith("[TEST] ")
        assert "Hello 张伟" in sent["body"] and sent["meta"]["test"] is True and sent["meta"]["actor"] == "ann"
        r = c.post("/console/preview/test", data={"csrf": csrf_of(page.text), "test_channel": "sms", **fields})
        assert r.status_code == 409 and "no address for sms" in r.text
        r = viewer.post("/console/preview/test", data={"csrf": csrf_of(viewer.get("/console/preview").text),
                                                        "test_channel": "email", **fields})
        assert r.status_code == 403
    assert len(outbox(tmp_path)) == 1
    [entry] = store.audit_page()
    assert (entry.action, entry.actor, entry.target) == ("send_test", "ann", "email: ann@example.com")
    assert entry.detail["test"] is True and entry.detail["status"] == "accepted" and entry.outcome_id is None
    assert store.notifications_page() == [] and store.event_counts_between(("queued", "sent"), 0, 4e9) == []


def test_impact_of_a_server_path_is_an_admins(tmp_path, daemons):
    """Pointing the Impact page at rules on the server is an admin's; the same rules change nothing."""
    d = daemons(console_deployment(tmp_path))
    with client(d.url) as viewer, client(d.url) as admin:
        sign_in(viewer, "vic"), sign_in(admin, "root")
        assert 'id="path"' not in viewer.get("/console/impact").text
        r = _form(viewer, "/console/impact", name="10-rules.yaml", rules="version: 1\n", days="7",
                  path=str(tmp_path / "rules"))
        assert r.status_code == 403
        r = _form(admin, "/console/impact", name="10-rules.yaml", rules="", days="7", path=str(tmp_path / "rules"))
        assert r.status_code == 200 and "0 of 0 outcome(s)" in r.text, r.text[-1500:]
        assert _form(admin, "/console/impact", name="../x.yaml", rules="v", days="7").status_code == 422
        assert _form(admin, "/console/impact", name="x.yaml", rules="version: 1\n", days="400").status_code == 422
