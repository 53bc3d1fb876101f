"""Run logging: console + text log on rank 0, one JSON object per epoch in metrics.jsonl."""
from __future__ import annotations

import json
import logging
import os
import sys
from typing import Optional

LOGGER_NAME = "distillkit"  # every module logs to logging.getLogger(__name__), a child of this one
FORMAT = ("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")


def setup_logging(log_file: Optional[str] = None, is_main: bool = True, debug: bool = False) -> logging.Logger:
    """Console (and ``log_file``) handlers on the distillkit logger; other ranks log warnings only."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    for handler in list(logger.handlers):
        if getattr(handler, "_distillkit", False):
            logger.removeHandler(handler)
            handler.close()
    formatter = logging.Formatter(*FORMAT)
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


def add_file_handler(path: str) -> logging.Handler:
    """Also write the distillkit log to ``path`` (a run's train.log), until the next setup_logging."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler._distillkit = True
    handler.setFormatter(logging.Formatter(*FORMAT))
    logging.getLogger(LOGGER_NAME).addHandler(handler)
    return handler


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

    def keep_epochs_up_to(self, last_epoch: int) -> None:
        """Drop rows of epochs after ``last_epoch`` (written before a crash that lost their checkpoint)."""
        _keep_rows(self.path, last_epoch)


def _keep_rows(path: str, last_epoch: int) -> None:
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as handle:
        rows = [line for line in handle if line.strip() and json.loads(line).get("epoch", -1) <= last_epoch]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.writelines(rows)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)

