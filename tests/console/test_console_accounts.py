"""Console accounts, sessions and languages on their own: herald.yaml console.users with located errors, argon2
hashes, `herald user add`, signed cookies and CSRF tokens, the sign-in limit, Accept-Language."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from engine.config.settings import load_config
from engine.console.accounts import SignInLimiter, check_password, hash_password, user_entry
from engine.console.i18n import TEXT, pick_language
from engine.console.session import Signer

HERALD = str(Path(sys.executable).with_name("herald"))
HASH = hash_password("correct horse battery")


def config(tmp_path: Path, console: str, env: dict | None = None):
    (tmp_path / "herald.yaml").write_text("console:\n" + console)
    return load_config(tmp_path / "herald.yaml", env=env or {})


def test_users_load_with_their_roles(tmp_path):
    cfg, diags = config(tmp_path, f"  secret: ${{S}}\n  users:\n    - {{name: ann, password_hash: '{HASH}', "
                                  "role: approver, email: ann@example.com}\n"
                                  f"    - {{name: bob, password_hash: '{HASH}', role: viewer}}\n",
                        env={"S": "s" * 32})
    assert not [d for d in diags if d.is_error], diags
    ann, bob = cfg.console.users
    assert (ann.name, ann.role, ann.email, bob.role) == ("ann", "approver", "ann@example.com", "viewer")
    assert ann.may("viewer") and ann.may("approver") and not ann.may("admin") and not bob.may("approver")
    assert cfg.console.secret == "s" * 32 and "correct" not in repr(cfg.console)


def test_bad_accounts_are_located_errors(tmp_path):
    _, diags = config(tmp_path, "  users:\n"
                                f"    - {{name: ann, password_hash: '{HASH}', role: approver}}\n"
                                f"    - {{name: ann, password_hash: '{HASH}', role: viewer}}\n"
                                "    - {name: cid, password_hash: hunter2, role: admin}\n"
                                f"    - {{name: dan, password_hash: '{HASH}', role: boss}}\n")
    errors = {(d.line, d.code) for d in diags if d.is_error}
    assert (4, "duplicate-user") in errors
    assert any(line == 5 for line, _ in errors)  # not an argon2 hash: the password itself was written
    assert any(line == 6 for line, _ in errors)  # no such role


def test_a_short_or_literal_secret_is_flagged(tmp_path):
    _, diags = config(tmp_path, "  secret: short\n")
    codes = {d.code for d in diags}
    assert {"weak-secret", "literal-secret"} <= codes
    cfg, diags = config(tmp_path, "  enabled: true\n", env={"HERALD_CONSOLE_SECRET": "x" * 20})
    assert cfg.console.secret == "x" * 20 and not diags


def test_check_password_and_user_entry():
    from engine.config.console import Account, ConsoleSettings

    settings = ConsoleSettings(users=(Account("ann", HASH, "admin"),))
    assert check_password(settings, "ann", "correct horse battery").name == "ann"
    assert check_password(settings, "ann", "wrong") is None
    assert check_password(settings, "nobody", "correct horse battery") is None
    entry = user_entry("li wei", "viewer", "pässwörd", "li@example.com")
    assert "pässwörd" not in entry and '"$argon2id$' in entry and "role: viewer" in entry


def test_herald_user_add_reads_the_password_from_stdin_and_prints_a_loadable_entry(tmp_path):
    out = subprocess.run([HERALD, "user", "add", "ann", "--role", "approver"], input="s3cret-pass\n",
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "s3cret-pass" not in out.stdout + out.stderr
    (tmp_path / "herald.yaml").write_text("console:\n  users:\n" + "".join("    " + line + "\n"
                                                                           for line in out.stdout.splitlines()))
    cfg, diags = load_config(tmp_path / "herald.yaml", env={})
    assert not diags
    assert check_password(cfg.console, "ann", "s3cret-pass").role == "approver"
    bad = subprocess.run([HERALD, "user", "add", "ann", "--role", "approver"], input="\n", capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "empty" in bad.stderr


def test_cookies_are_signed_and_expire():
    signer = Signer("k" * 32)
    session, cookie = signer.new("ann", "fp", expires=1000.0)
    assert signer.read(cookie, now=999.0) == session
    assert signer.read(cookie, now=1000.0) is None  # expired
    assert Signer("other key 0123456789").read(cookie, now=0) is None
    body, mac = cookie.split(".")
    forged = body.replace(body[:4], "WyJi") + "." + mac
    assert signer.read(forged, now=0) is None
    assert signer.read("garbage", now=0) is None and signer.read("a.b", now=0) is None


def test_csrf_tokens_belong_to_one_session():
    signer = Signer("k" * 32)
    one, _ = signer.new("", "", 10.0)
    two, _ = signer.new("", "", 10.0)
    assert signer.csrf_ok(one, signer.csrf(one))
    assert not signer.csrf_ok(one, signer.csrf(two)) and not signer.csrf_ok(one, None)
    assert not signer.csrf_ok(None, signer.csrf(one))


def test_failed_sign_ins_are_limited_per_account_and_address():
    now = [0.0]
    limiter = SignInLimiter(3, 60.0, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("ann", "1.2.3.4") == 0
        limiter.failed("ann", "1.2.3.4")
    assert limiter.retry_after("ann", "1.2.3.4") == 60.0
    assert limiter.retry_after("ann", "5.6.7.8") == 0 and limiter.retry_after("bob", "1.2.3.4") == 0
    now[0] = 59.0
    assert limiter.retry_after("ann", "1.2.3.4") == 1.0
    now[0] = 60.0
    assert limiter.retry_after("ann", "1.2.3.4") == 0
    limiter.failed("bob", "x")
    limiter.succeeded("bob", "x")
    assert limiter.retry_after("bob", "x") == 0


def test_limiter_memory_is_bounded():
    limiter = SignInLimiter(1, 60.0, clock=lambda: 0.0, max_keys=10)
    for i in range(100):
        limiter.failed(f"u{i}", "a")
    assert len(limiter._failures) == 10


def test_language_from_accept_language():
    assert pick_language(None) == "en"
    assert pick_language("zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert pick_language("en-US,en;q=0.9,zh-CN;q=0.8") == "en"
    assert pick_language("zh-TW") == "zh-CN"
    assert pick_language("de-DE, fr;q=0.5") == "en"
    assert pick_language("de;q=1, zh;q=0.7, en;q=0.5") == "zh-CN"
    assert pick_language("en;q=bad, zh") == "zh-CN"


def test_every_console_text_has_both_languages_with_the_same_fields():
    """A key in one language only falls back to English for a Chinese reader; a field named differently raises
    KeyError when the page is rendered."""
    fields = {lang: {key: set(re.findall(r"\{(\w+)\}", text)) for key, text in table.items()}
              for lang, table in TEXT.items()}
    assert set(fields["en"]) == set(fields["zh-CN"]), set(fields["en"]) ^ set(fields["zh-CN"])
    assert {k: v for k, v in fields["en"].items() if fields["zh-CN"][k] != v} == {}
