"""The daemon (`herald serve`): HTTP intake, dispatcher, reload and shutdown around one Runtime."""
from __future__ import annotations

from engine.daemon.serve import Daemon, DaemonError, setup_logging

__all__ = ["Daemon", "DaemonError", "setup_logging"]
