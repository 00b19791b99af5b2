"""The rule language: YAML with positions, schema and semantic checks, the `when` expression language.

The names other packages use are exported here (`__all__`) and imported from their submodule on first use
(engine/exports.py): importing one submodule does not import its siblings, so the CLI's lazy imports stay cheap.
"""
from __future__ import annotations

from typing import Any

from engine.exports import exported, resolve

_EXPORTS = {
    "cases": ("case_files", "run_all"),
    "loader": ("load_ruleset", "ruleset_version", "source_hashes"),
    "schemacheck": ("schema_diagnostics",),
    "schemas": ("TEMPLATE_EXTRAS", "fast_check", "jsonschema_validator", "outcome_fields", "sample_outcome",
                "schema", "template_fields"),
    "suggest": ("did_you_mean",),
    "when": ("FieldRange", "field_range", "parse_when"),
    "yamlpos": ("CoreResolver", "Document", "load_yaml_file"),
}
__all__ = exported(_EXPORTS)


def __getattr__(name: str) -> Any:
    return resolve(__name__, _EXPORTS, name)
