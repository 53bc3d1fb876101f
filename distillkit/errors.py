"""The error types a user can cause, and how they are worded.

Every error a user can trigger through a config, a path or a shape is a
:class:`DistillkitError`.  Its message is one paragraph: where (file and key
path), what was found, what was expected and, where it helps, the nearest valid
names.  The command line prints that paragraph alone (no traceback) unless
``--debug`` is given.
"""
from __future__ import annotations

import difflib
from typing import Iterable, Optional, Sequence


def worker_paragraph(text: str, type_name: str) -> str:
    """The paragraph of an error raised in a DataLoader worker process.

    torch re-raises a worker's exception in the main process as ``exc_type(text)``, where ``text`` is
    "Caught <type> in DataLoader worker process N.\\nOriginal Traceback (most recent call last): ...", ending
    with the line "<module>.<type>: <paragraph>".  Given such a text, this returns the paragraph alone (so
    the command line still prints one paragraph); any other text is returned unchanged."""
    if "Traceback (most recent call last)" not in text:
        return text
    marker = f"{type_name}: "
    at = text.rfind(marker)
    return text[at + len(marker):].strip() if at >= 0 else text


class DistillkitError(Exception):
    """Base class of every error distillkit explains to the user (raised in a DataLoader worker, it still
    reads as its one paragraph: see :func:`worker_paragraph`)."""

    def __init__(self, *args):
        if args and isinstance(args[0], str):
            args = (worker_paragraph(args[0], type(self).__name__),) + args[1:]
        super().__init__(*args)


def nearest_names(name: str, candidates: Iterable[str], n: int = 5) -> list:
    """The candidates closest to ``name`` (case-insensitive), best first."""
    pool = sorted(set(str(c) for c in candidates))
    lowered = {c.lower(): c for c in pool}
    close = difflib.get_close_matches(str(name).lower(), list(lowered), n=n, cutoff=0.5)
    found = [lowered[c] for c in close]
    # Substring matches help with prefixes such as 'resnet' -> 'resnet18'.
    for c in pool:
        if len(found) >= n:
            break
        if c not in found and str(name).lower() in c.lower() and len(str(name)) >= 3:
            found.append(c)
    return found


class CheckpointError(DistillkitError):
    """A checkpoint that is missing, unreadable, or does not fit its model."""


class UnhookedPathError(DistillkitError):
    """A loss reads a module path that no forward hook captured."""


class ShapeMismatchError(DistillkitError):
    """Features that a loss pairs up (or a model and its loss) do not have compatible shapes."""


class ConfigError(DistillkitError):
    """A problem with a config value, located by file, line and key path."""

    def __init__(self, message: str, key_path: Optional[str] = None, file: Optional[str] = None,
                 line: Optional[int] = None, candidates: Optional[Sequence[str]] = None,
                 hint: Optional[str] = None):
        self.message = worker_paragraph(message, type(self).__name__)
        self.key_path = key_path
        self.file = file
        self.line = line
        self.candidates = list(candidates or [])
        self.hint = hint
        super().__init__(self.render())

    def locate(self, file: Optional[str] = None, line: Optional[int] = None) -> "ConfigError":
        """Fill in the file (and line) where they were not known when raised."""
        if self.file is None and file is not None:
            self.file = file
        if self.line is None and line is not None:
            self.line = line
        self.args = (self.render(),)
        return self

    def render(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.line:
            where.append(f"line {self.line}")
        if self.key_path:
            where.append(f"key '{self.key_path}'")
        text = (", ".join(where) + ": " if where else "") + self.message
        if self.candidates:
            text += " Nearest valid names: " + ", ".join(repr(c) for c in self.candidates) + "."
        if self.hint:
            text += " " + self.hint
        return text

    def __str__(self) -> str:  # always current, even after locate()
        return self.render()


class BadImageError(DistillkitError):
    """A data file that cannot be read or decoded (truncated, not an image, unreadable), named by path.

    Built from a worker's wrapped text (see :func:`worker_paragraph`) it keeps the original paragraph, so an
    error raised inside a DataLoader worker prints exactly as one raised in the main process."""

    def __init__(self, message: str = "", path: Optional[str] = None):
        self.path = path
        super().__init__(str(message))
