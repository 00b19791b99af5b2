"""The rule language: YAML with positions, schema and semantic checks, the `when` expression language."""
