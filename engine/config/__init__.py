"""Configuration: herald.yaml (defaults, ${ENV} secrets, the resolved Config) and the deployment loaded as one unit.

The names other packages use are exported here (`__all__`) and imported from their submodule on first use
(engine/exports.py): importing one submodule does not import its siblings, so the CLI's lazy imports stay cheap.
"""
from __future__ import annotations

from typing import Any

from engine.exports import exported, resolve

_EXPORTS = {
    "console": ("Account", "ConsoleSettings", "ROLES"),
    "deployment": ("Deployment", "load_deployment"),
    "settings": ("AlertSettings", "ChannelConfig", "Config", "DispatchSettings", "MIN_PUSH_TOKEN", "ServerAuth",
                 "display_path", "expand_env", "literal_secret", "load_config"),
}
__all__ = exported(_EXPORTS)


def __getattr__(name: str) -> Any:
    return resolve(__name__, _EXPORTS, name)
