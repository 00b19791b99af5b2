"""A small HTTP client for a running daemon: post outcome files in batches (`herald post`, `make run`, the benchmark),
and the desk's /v1 API (`herald held`, `queue`, `approve`... in engine/cli/desk.py)."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx

from engine.intake.decode import Item, read_items
from engine.daemon.auth import signed_headers


class PostError(Exception):
    """The daemon refused a request for a reason other than the data (401, 413, 5xx...)."""


def headers_for(body: bytes, token: str | None = None, hmac_secret: str | None = None,
                signature_header: str = "X-Herald-Signature", *, method: str = "POST",
                url: str = "/v1/outcomes", now: float | None = None) -> dict:
    """Content type and credentials for one request to `url` (a full URL or the path with its query)."""
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    if hmac_secret:
        target = httpx.URL(url).raw_path.decode("ascii")  # the path and query exactly as sent
        h.update(signed_headers(hmac_secret, method, target, body, time.time() if now is None else now,
                                signature_header))
    return h


def wait_healthy(url: str, timeout: float = 30.0) -> dict:
    """GET /healthz until it answers 200; its JSON, or TimeoutError."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url.rstrip("/") + "/healthz", timeout=2.0)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError as e:
            last = e
        time.sleep(0.1)
    raise TimeoutError(f"no answer from {url}/healthz in {timeout:.0f}s ({last})")


class Poster:
    """Posts raw outcome bodies to /v1/outcomes and counts the statuses the daemon answers with."""

    def __init__(self, url: str, token: str | None = None, hmac_secret: str | None = None,
                 signature_header: str = "X-Herald-Signature", client: httpx.Client | None = None):
        self.url = url.rstrip("/") + "/v1/outcomes"
        self.token, self.hmac_secret, self.signature_header = token, hmac_secret, signature_header
        self.client = client or httpx.Client(timeout=60.0)
        self.counts: Counter = Counter()
        self.items: list[dict] = []

    def post(self, body: bytes, retries: int = 3) -> httpx.Response:
        """One POST (retrying connection errors and 503); PostError for answers other than 202 and 422."""
        for attempt in range(retries + 1):
            try:
                r = self.client.post(self.url, content=body, headers=headers_for(
                    body, self.token, self.hmac_secret, self.signature_header, url=self.url))
            except httpx.TransportError:
                if attempt == retries:
                    raise
                time.sleep(0.2 * 2 ** attempt)
                continue
            if r.status_code == 503 and attempt < retries:
                time.sleep(0.2 * 2 ** attempt)
                continue
            if r.status_code == 202:
                for item in r.json()["items"]:
                    self.counts[item["status"]] += 1
                    self.items.append(item)
            elif r.status_code == 422:
                self.counts["invalid"] += 1
                self.items.append({"id": None, "status": "invalid", **r.json()})
            else:
                raise PostError(f"{self.url}: HTTP {r.status_code}: {r.text[:300]}")
            return r
        raise AssertionError("unreachable")

    def post_items(self, items: Iterable[Item], batch: int = 100, progress: Callable[[int], None] | None = None
                   ) -> Counter:
        """Valid JSON items in lists of `batch`; an unparsable one alone (the daemon keeps it as a dead letter)."""
        chunk: list[bytes] = []

        def flush() -> None:
            if chunk:
                self.post(b"[" + b",".join(chunk) + b"]")
                if progress:
                    progress(len(chunk))
                chunk.clear()

        for item in items:
            raw = item.raw if isinstance(item.raw, bytes) else item.raw.encode("utf-8")
            if item.error is not None:
                self.post(raw)
                if progress:
                    progress(1)
                continue
            chunk.append(raw)
            if len(chunk) >= batch:
                flush()
        flush()
        return self.counts

    def close(self) -> None:
        self.client.close()


def post_file(path: str | Path, url: str, token: str | None = None, hmac_secret: str | None = None,
              batch: int = 100, progress: Callable[[int], None] | None = None,
              answers: list | None = None) -> Counter:
    """Posts a JSON-lines (or CSV) file to a running daemon; the statuses counted (`answers`, when given,
    receives the daemon's answer for each item)."""
    poster = Poster(url, token, hmac_secret)
    try:
        return poster.post_items(read_items(path), batch, progress)
    finally:
        if answers is not None:
            answers.extend(poster.items)
        poster.close()


class DeskError(Exception):
    """The daemon refused a desk request: `status` (HTTP), the message, and the field at fault if named."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.field = status, field


class DeskClient:
    """The desk's /v1 API over HTTP (the CLI's `herald held`, `queue`, `approve`...): bearer token, the actor
    header, and listings followed cursor by cursor."""

    def __init__(self, url: str, token: str | None = None, actor: str | None = None,
                 client: httpx.Client | None = None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        if actor:
            self.headers["X-Herald-Actor"] = actor
        self.client = client or httpx.Client(timeout=timeout)

    def _answer(self, r: httpx.Response) -> Any:
        if r.status_code >= 400:
            try:
                doc = r.json()
            except ValueError:
                doc = {}
            error = doc.get("error") if isinstance(doc, dict) else None
            raise DeskError(r.status_code, error or f"HTTP {r.status_code}: {r.text[:200]}",
                            doc.get("field") if isinstance(doc, dict) else None)
        return r.json()

    def get(self, path: str, params: dict | None = None) -> Any:
        return self._answer(self.client.get(self.url + path, params=_clean(params), headers=self.headers))

    def post(self, path: str, params: dict | None = None, body: bytes | None = None) -> Any:
        headers = {**self.headers, "Content-Type": "application/json"} if body is not None else self.headers
        return self._answer(self.client.post(self.url + path, params=_clean(params), content=body, headers=headers))

    def pages(self, path: str, params: dict | None = None, limit: int | None = None) -> Iterator[dict]:
        """Every item of a listing, page after page (at most `limit` items when given)."""
        params = dict(params or {})
        cursor, n = None, 0
        while True:
            doc = self.get(path, {**params, "cursor": cursor})
            for item in doc["items"]:
                yield item
                n += 1
                if limit is not None and n >= limit:
                    return
            cursor = doc.get("next")
            if not cursor:
                return

    def close(self) -> None:
        self.client.close()


def _clean(params: dict | None) -> dict | None:
    return None if params is None else {k: v for k, v in params.items() if v is not None}
