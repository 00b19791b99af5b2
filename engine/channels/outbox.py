"""The outbox transport: each message written as a file under outbox/<channel>/, like a development mail backend."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from engine.channels.base import ACCEPTED, PERMANENT, Envelope, SendResult

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class OutboxTransport:
    """Writes one JSON file per message; the attempt key names the file, so a retry overwrites, never duplicates."""

    name = "outbox"

    def __init__(self, channel: str, directory: str | Path = "outbox"):
        self.channel = channel
        self.directory = Path(directory) / channel

    def path_for(self, envelope: Envelope) -> Path:
        return self.directory / (_SAFE.sub("_", envelope.attempt_key) + ".json")

    def send(self, envelope: Envelope) -> SendResult:
        record = {
            "notification": envelope.notification_id,
            "attempt_key": envelope.attempt_key,
            "channel": envelope.channel,
            "to": envelope.to,
            "subject": envelope.subject,
            "body": envelope.body,
            "html": envelope.html,
            "params": dict(envelope.params),
            "meta": dict(envelope.meta),
        }
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
