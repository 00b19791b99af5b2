"""One transport contract: each transport's capabilities and settings, and every place that restates them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.channels import TRANSPORTS, transport_class
from engine.channels.capabilities import CAPABILITIES, DELIVERY, READ, Capabilities
from engine.config.settings import ADDRESSED_TRANSPORTS
from engine.daemon.send import DELIVERY_RECEIPTS, READ_RECEIPTS
from engine.render.sms import SMS_TRANSPORTS

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "config.schema.json").read_text())


def test_every_transport_has_its_row() -> None:
    assert set(CAPABILITIES) == set(TRANSPORTS)
    for name in TRANSPORTS:
        cls = transport_class(name)
        assert cls.name == name and cls.capabilities is CAPABILITIES[name]
        assert isinstance(cls.capabilities, Capabilities)


def test_name_sets_are_derived_from_the_table() -> None:
    assert {n for n, c in CAPABILITIES.items() if c.address} == ADDRESSED_TRANSPORTS
    assert {n for n, c in CAPABILITIES.items() if c.template_sms} == SMS_TRANSPORTS
    assert {n for n, c in CAPABILITIES.items() if c.receipts == READ} == READ_RECEIPTS
    assert {n for n, c in CAPABILITIES.items() if c.receipts in (DELIVERY, READ)} == DELIVERY_RECEIPTS


def test_receipts_capability_matches_the_classes() -> None:
    for name, caps in CAPABILITIES.items():
        cls = transport_class(name)
        assert callable(getattr(cls, "poll_receipts", None)) == (caps.receipts != "none"), name


def _schema_settings(name: str) -> set[str]:
    channel = SCHEMA["$defs"]["channel"] if "$defs" in SCHEMA else SCHEMA["definitions"]["channel"]
    for branch in channel["allOf"]:
        if branch["if"]["properties"]["transport"]["const"] == name:
            return set(branch["then"]["properties"]) - {"transport"}
    raise AssertionError(f"no schema branch for {name}")


def test_schema_transport_names_are_the_registry() -> None:
    channel = SCHEMA["$defs"]["channel"] if "$defs" in SCHEMA else SCHEMA["definitions"]["channel"]
    assert set(channel["properties"]["transport"]["enum"]) == set(TRANSPORTS)


@pytest.mark.parametrize("name", sorted(n for n in TRANSPORTS if n != "outbox"))
def test_schema_settings_match_each_transports_spec(name: str) -> None:
    module = __import__(TRANSPORTS[name].split(":")[0], fromlist=["SETTINGS"])
    assert _schema_settings(name) == set(module.SETTINGS)
    # the receipt poller reads poll_interval: a transport with receipts declares it, so its reader accepts it
    assert ("poll_interval" in module.SETTINGS) == (CAPABILITIES[name].receipts != "none")
