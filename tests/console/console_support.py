"""Helpers for the console tests: a deployment with console accounts, and an HTTP client that signs in the way a
browser does (the sign-in form's CSRF token, the session cookie)."""
from __future__ import annotations

import re
from pathlib import Path

import httpx

from daemon_support import make_deployment
from engine.console.accounts import hash_password

PASSWORDS = {"ann": "ann-password-1", "vic": "vic-password-1", "root": "root-password-1"}
ROLES = {"ann": "approver", "vic": "viewer", "root": "admin"}
_HASHES: dict[str, str] = {}


def console_yaml(users: dict[str, str] | None = None, extra: str = "") -> str:
    """herald.yaml's console: section with accounts ann (approver), vic (viewer), root (admin)."""
    users = ROLES if users is None else users
    lines = ["console:", "  secret: console-test-secret-0123456789", *(f"  {x}" for x in extra.splitlines()),
             "  users:"]
    for name, role in users.items():
        if name not in _HASHES:
            _HASHES[name] = hash_password(PASSWORDS[name])
        lines.append(f"    - {{name: {name}, password_hash: '{_HASHES[name]}', role: {role}, "
                     f"email: {name}@example.com}}")
    return "\n".join(lines) + "\n"


def console_deployment(root: Path, *, users: dict[str, str] | None = None, extra: str = "", **kw) -> Path:
    make_deployment(root, **kw)
    with (root / "herald.yaml").open("a") as f:
        f.write(console_yaml(users, extra))
    return root


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:2000]
    return m.group(1)


def client(url: str, **kw) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30, **kw)


def sign_in(c: httpx.Client, name: str, password: str | None = None) -> httpx.Response:
    page = c.get("/console/login")
    return c.post("/console/login", data={"csrf": csrf_of(page.text), "name": name,
                                          "password": PASSWORDS[name] if password is None else password,
                                          "next": "/console/today"})
