"""Run logging: console + text log on rank 0, one JSON object per epoch in metrics.jsonl."""
from __future__ import annotations

import json
import logging
import os
import sys
from typing import Optional

LOGGER_NAME = "distillkit"


def setup_logging(log_file: Optional[str] = None, is_main: bool = True, debug: bool = False) -> logging.Logger:
    """Console (and ``log_file``) handlers on the distillkit logger; other ranks log warnings only."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    for handler in list(logger.handlers):
        if getattr(handler, "_distillkit", False):
            logger.removeHandler(handler)
            handler.close()
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers = [logging.StreamHandler(sys.stdout)]
    if log_file and is_main:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler._distillkit = True
        handler.setFormatter(formatter)
        handler.setLevel(logging.DEBUG if debug else (logging.INFO if is_main else logging.WARNING))
        logger.addHandler(handler)
    logger.propagate = False
    return logger


class MetricsLog:
    """Appends one JSON object per line to ``path`` (only on the main rank)."""

    def __init__(self, path: str, enabled: bool = True):
        self.path = path
        self.enabled = enabled

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, sort_keys=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
