"""The JSON Schemas shipped with herald, installed as the package `herald_schemas`."""
