"""Console accounts: argon2 password hashes (the `herald user add` entry), checking a sign-in, and the limit on
failed sign-ins per account and address."""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from engine.config.console import ROLES, Account, ConsoleSettings

MAX_PASSWORD = 1024  # characters: a longer password is refused before hashing (argon2 over megabytes is a DoS)
_HASHER = PasswordHasher()
_DUMMY = _HASHER.hash("herald: no such account")  # an unknown name costs the same time as a wrong password


class PasswordProblem(ValueError):
    """A password `herald user add` refuses (empty, too long, the two entries differ)."""


def hash_password(password: str) -> str:
    """The argon2id hash of `password` (with its own random salt and the cost parameters in the string)."""
    if not password:
        raise PasswordProblem("the password is empty")
    if len(password) > MAX_PASSWORD:
        raise PasswordProblem(f"the password is longer than {MAX_PASSWORD} characters")
    return _HASHER.hash(password)


def user_entry(name: str, role: str, password: str, email: str | None = None) -> str:
    """The YAML list item for herald.yaml's console.users (the hash, never the password)."""
    import json

    if role not in ROLES:
        raise PasswordProblem(f"role must be one of {', '.join(ROLES)}")
    if not name.strip() or any(ord(c) < 32 for c in name):
        raise PasswordProblem("the name is empty or has control characters")
    lines = [f"- name: {json.dumps(name.strip(), ensure_ascii=False)}",
             f"  password_hash: {json.dumps(hash_password(password))}", f"  role: {role}"]
    if email:
        lines.append(f"  email: {json.dumps(email, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def check_password(settings: ConsoleSettings, name: str, password: str) -> Account | None:
    """The account when `password` is its password; None otherwise (same cost whether or not the name exists)."""
    account = settings.account(name)
    if len(password) > MAX_PASSWORD:
        return None
    try:
        _HASHER.verify(account.password_hash if account else _DUMMY, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    return account


class SignInLimiter:
    """Failed sign-ins per (account name, client address): after `max_failures` within `window` seconds, that pair
    is refused until the oldest failure is `window` old. Bounded: at most `max_keys` pairs are remembered."""

    def __init__(self, max_failures: int, window: float, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000):
        self.max_failures, self.window, self.clock, self.max_keys = max_failures, window, clock, max_keys
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        return times

    def retry_after(self, name: str, address: str) -> float:
        """Seconds until this pair may try again; 0 when it may now."""
        with self._lock:
            now = self.clock()
            times = self._recent((name, address), now)
            if len(times) < self.max_failures:
                return 0.0
            return max(self.window - (now - times[0]), 1.0)

    def failed(self, name: str, address: str) -> None:
        with self._lock:
            now = self.clock()
            key = (name, address)
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times
            if len(self._failures) > self.max_keys:  # forget the pairs whose last failure is oldest
                for old in sorted(self._failures, key=lambda k: self._failures[k][-1] if self._failures[k] else 0)[
                        : len(self._failures) - self.max_keys]:
                    del self._failures[old]

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            self._failures.pop((name, address), None)
