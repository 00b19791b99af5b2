"""Channels: one module per transport."""
