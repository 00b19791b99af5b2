"""The JSON Schemas shipped with herald, installed as the package data `engine.schemas`."""
