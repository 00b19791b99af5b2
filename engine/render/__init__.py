"""Rendering: the template store, locale resolution, the Jinja2 sandbox, template headers, variable checks, SMS template params.

The names other packages use are exported here (`__all__`) and imported from their submodule on first use
(engine/exports.py): importing one submodule does not import its siblings, so the CLI's lazy imports stay cheap.
"""
from __future__ import annotations

from typing import Any

from engine.exports import exported, resolve

_EXPORTS = {
    "budget": ("DEFAULT_LIMITS", "limits_from_config"),
    "locales": ("candidate_locale", "chain", "locale_of", "preferences"),
    "sandbox": ("build_context", "plain"),
    "sms": ("SMS_TRANSPORTS", "check_sms_templates", "sms_mapping", "template_params"),
    "templates": ("TemplateFile", "TemplateStore"),
}
__all__ = exported(_EXPORTS)


def __getattr__(name: str) -> Any:
    return resolve(__name__, _EXPORTS, name)
