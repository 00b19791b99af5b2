"""Rendering: the template store, locale resolution, the Jinja2 sandbox, template headers, variable checks, SMS template params."""
