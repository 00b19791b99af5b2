"""herald: tells interview candidates their result."""

__version__ = "0.1.0"
