"""The outbox transport: each message written as a file under outbox/<channel>/, like a development mail backend."""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from engine.channels.capabilities import CAPABILITIES
from engine.channels.base import ACCEPTED, PERMANENT, Envelope, SendResult

_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")
_MAX_STEM = 180  # characters of a file name before it is cut and suffixed with a hash


def file_stem(key: str) -> str:
    """A file name for an attempt key, injective: `a/b`, `a_b`, `a b` and `a:b` get four different names.

    Letters, digits, `.` and `-` stay; every other character (`_` included) is written `_XX` per UTF-8
    byte, and a leading `.` too (no hidden files). A longer name is cut and ends in `~` and a hash of the
    whole key (`~` is always escaped otherwise, so cut names never equal uncut ones).
    """
    stem = _UNSAFE.sub(lambda m: "".join(f"_{b:02x}" for b in m.group().encode("utf-8")), key)
    if stem.startswith("."):
        stem = "_2e" + stem[1:]
    if len(stem) > _MAX_STEM:
        stem = stem[:_MAX_STEM - 33] + "~" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return stem


class OutboxTransport:
    """Writes one JSON file per message; the attempt key names the file, so a retry overwrites, never duplicates."""

    name = "outbox"
    capabilities = CAPABILITIES["outbox"]

    def __init__(self, channel: str, directory: str | Path = "outbox"):
        self.channel = channel
        self.directory = Path(directory) / channel

    def path_for(self, envelope: Envelope) -> Path:
        return self.directory / (file_stem(envelope.attempt_key) + ".json")

    def send(self, envelope: Envelope) -> SendResult:
        record = envelope.record(params=True)
        if envelope.sender:
            record["from"] = envelope.sender
        path = self.path_for(envelope)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(record, fh, ensure_ascii=False, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)  # atomic: a reader never sees half a message
        except OSError as e:
            return SendResult(PERMANENT, error=f"outbox not writable: {e.strerror}")
        return SendResult(ACCEPTED, provider_id=path.name)

    def check(self) -> list[str]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            return [f"outbox directory {self.directory} is not writable: {e.strerror}"]
        return [] if os.access(self.directory, os.W_OK) else [f"outbox directory {self.directory} is not writable"]
