"""Presentation for the command line (tables, colours, explanations): cli.py's commands call the engine and print with these."""
