"""herald.yaml `console:`: the web console's accounts, session key and sign-in limits, parsed once into frozen
settings with located diagnostics (a duplicate account, a weak or literal secret, a password written in clear).

The schema (schemas/config.schema.json) already refuses unknown keys, bad roles and hashes that are not argon2;
the checks here are the ones a schema cannot express.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import Diagnostic, Loc
from engine.rules.yamlpos import Document

ROLES = ("viewer", "approver", "admin")
MIN_CONSOLE_SECRET = 16  # characters; a shorter console.secret is an error
SECRET_ENV = "HERALD_CONSOLE_SECRET"  # read when console.secret is not set


@dataclass(frozen=True)
class Account:
    """One person who may sign in: the argon2 hash of their password (never the password) and their role."""

    name: str
    password_hash: str = field(repr=False)
    role: str
    email: str | None = None

    def may(self, role: str) -> bool:
        """True when this account's role is `role` or above (viewer < approver < admin)."""
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class ConsoleSettings:
    """console: whether it is served, the accounts, the session key (None: a random one per run) and limits."""

    enabled: bool = True
    users: tuple[Account, ...] = ()
    secret: str | None = field(default=None, repr=False)
    trusted_proxy: bool = False
    max_failures: int = 5
    lockout: float = 900.0   # seconds
    session: float = 43200.0  # seconds

    def account(self, name: str) -> Account | None:
        return next((a for a in self.users if a.name == name), None)


def _seconds(value: Any, default: float) -> float:
    from engine.schedule.timing import parse_duration

    d = parse_duration(value) if isinstance(value, str) else None
    return d.total_seconds() if d is not None and d.total_seconds() > 0 else default


def parse_console(raw: Any, doc: Document | None, file: str, env_secret: str | None,
                  literal: bool) -> tuple[ConsoleSettings, list[Diagnostic]]:
    """The console settings from the (env-expanded) `console:` mapping; `literal`: console.secret was written in
    the file rather than taken from ${ENV}; `env_secret`: HERALD_CONSOLE_SECRET, used when console.secret is unset."""
    raw = raw if isinstance(raw, dict) else {}

    def loc(*path: Any, key: bool = False) -> Loc:
        return doc.loc(("console", *path), key=key) if doc is not None else Loc(file, 1, 1)

    diags: list[Diagnostic] = []
    users: list[Account] = []
    seen: set[str] = set()
    for i, spec in enumerate(raw.get("users") or ()):
        if not isinstance(spec, dict):
            continue  # the schema says so, located
        name, hashed, role = spec.get("name"), spec.get("password_hash"), spec.get("role")
        if not (isinstance(name, str) and name and isinstance(hashed, str) and role in ROLES):
            continue
        if not hashed.startswith("$argon2"):
            diags.append(loc("users", i, "password_hash").error(
                "bad-password-hash", f"console user {name}: password_hash is not an argon2 hash (write the line "
                                     "`herald user add` prints, never the password itself)"))
            continue
        if name in seen:
            diags.append(loc("users", i, "name").error("duplicate-user", f"console user {name} is listed twice"))
            continue
        seen.add(name)
        email = spec.get("email")
        users.append(Account(name, hashed, role, email if isinstance(email, str) and email else None))
    secret = raw.get("secret") if isinstance(raw.get("secret"), str) and raw.get("secret") else None
    if secret is not None and literal:
        diags.append(loc("secret").warning("literal-secret", 'console.secret is written in the file; write '
                                                             f'"${{{SECRET_ENV}}}" and set it in the environment'))
    secret = secret or env_secret or None
    if secret is not None and len(secret) < MIN_CONSOLE_SECRET:
        diags.append(loc("secret").error("weak-secret", f"console.secret is {len(secret)} characters long: use a "
                                                        f"random value of at least {MIN_CONSOLE_SECRET} characters"))
    failures = raw.get("max_failures")
    settings = ConsoleSettings(
        enabled=raw.get("enabled") is not False, users=tuple(users), secret=secret,
        trusted_proxy=raw.get("trusted_proxy") is True,
        max_failures=failures if isinstance(failures, int) and not isinstance(failures, bool) and failures > 0
        else ConsoleSettings.max_failures,
        lockout=_seconds(raw.get("lockout"), ConsoleSettings.lockout),
        session=_seconds(raw.get("session"), ConsoleSettings.session))
    return settings, diags
