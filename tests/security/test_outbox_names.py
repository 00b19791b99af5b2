"""Item 9: outbox (and archive) file names are injective: distinct attempt keys never share a file."""
from __future__ import annotations

import json
from pathlib import Path

from engine.channels.base import Envelope
from engine.channels.outbox import OutboxTransport, file_stem


def envelope(key: str) -> Envelope:
    return Envelope(notification_id=key.split("#")[0] + "#1", attempt_key=key, channel="archive",
                    to="ann@example.com", subject=None, body=f"body of {key}")


def test_keys_that_looked_alike_get_their_own_files(tmp_path: Path) -> None:
    keys = ["a/b#1:0:1", "a_b#1:0:1", "a b#1:0:1", "a:b#1:0:1", "a_2fb#1:0:1", ".hidden#1:0:1", "x" * 300 + "#1",
            "x" * 300 + "#2", "张伟#1:0:1"]
    t = OutboxTransport("archive", tmp_path)
    for k in keys:
        assert t.send(envelope(k)).ok
    files = sorted((tmp_path / "archive").glob("*.json"))
    assert len(files) == len(keys)
    assert sorted(json.loads(f.read_text())["attempt_key"] for f in files) == sorted(keys)
    assert all(not f.name.startswith(".") and len(f.name) < 255 for f in files)


def test_a_retry_of_one_attempt_still_overwrites_its_file(tmp_path: Path) -> None:
    t = OutboxTransport("email", tmp_path)
    t.send(envelope("a/b#1:0:1"))
    t.send(envelope("a/b#1:0:1"))
    assert [p.name for p in (tmp_path / "email").iterdir()] == [file_stem("a/b#1:0:1") + ".json"]
