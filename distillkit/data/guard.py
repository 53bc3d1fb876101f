"""Unreadable image files: one paragraph naming the file, or (``skip_bad_images: true``) skipped and counted.

A dataset that lists its files as ``samples`` (or ``imgs``) of ``(path, target)`` and reads each one through
its ``loader`` attribute (torchvision's ``ImageFolder`` and ``DatasetFolder``, and datasets built like them)
gets a :class:`GuardedLoader` in place of that loader.  A file the loader cannot read (a truncated JPEG, a
text file named ``.png``, a file that vanished) then raises :class:`~distillkit.errors.BadImageError`: one
paragraph with the file, the reason and what to do, also from a DataLoader worker process.

With ``datasets.<name>.skip_bad_images: true`` (or the same key in one split's block, which wins) the file
is skipped instead: the next readable file of the same class (cyclically, in ``samples`` order) is read in
its place, so item ``i`` always yields the same image and a target of the right class, and a warning names
the file and the number of files skipped so far (one count shared by the DataLoader workers of a process).
"""
from __future__ import annotations

import copy
import logging
import multiprocessing
from multiprocessing import context as mp_context
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import BadImageError, ConfigError

logger = logging.getLogger(__name__)

SKIP_KEY = "skip_bad_images"


def _reason(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())  # one line, whatever the library wrote


class _SkipCount:
    """A running count shared with forked or spawned DataLoader workers (a plain count when pickled
    any other way, e.g. by ``copy.deepcopy``)."""

    def __init__(self, start: int = 0):
        self.shared = multiprocessing.Value("q", start)

    def increment(self) -> int:
        with self.shared.get_lock():
            self.shared.value += 1
            return self.shared.value

    def __getstate__(self):
        if mp_context.get_spawning_popen() is not None:  # a worker being started: share the count
            return {"shared": self.shared}
        return {"start": self.shared.value}

    def __setstate__(self, state):
        if "shared" in state:
            self.shared = state["shared"]
        else:
            self.__init__(state["start"])


class GuardedLoader:
    """Wraps a dataset's ``loader(path)``: a failure becomes :class:`BadImageError` naming ``path``, or,
    with ``skip``, the next readable file of the same class is loaded instead (see the module docstring).

    ``samples`` is the dataset's own list of ``(path, target)``; ``where`` the split's key path and
    ``skip_key`` the key that turns skipping on, both used in messages."""

    def __init__(self, loader, samples: Sequence[Tuple[str, int]], where: str, skip_key: str, skip: bool):
        self.loader = loader
        self.samples = samples
        self.where = where
        self.skip_key = skip_key
        self.skip = skip
        self.count = _SkipCount() if skip else None
        self._index: Optional[Dict[str, int]] = None  # path -> position in samples, built at the first bad file

    def __call__(self, path):
        try:
            return self.loader(path)
        except MemoryError:
            raise
        except Exception as exc:
            if not self.skip:
                raise BadImageError(
                    f"{self.where}: the file {str(path)!r} could not be read as an image ({_reason(exc)}). "
                    f"Replace or delete it (every file under the dataset root is read), or set "
                    f"{self.skip_key}: true to skip unreadable files, each one counted in the log.",
                    path=str(path)) from exc
            return self._replacement(str(path), exc)

    def around(self, loader) -> "GuardedLoader":
        """This guard (its settings, its shared skip count) around another ``loader(path)``: ``decode: fast``
        reads the files itself (data/decoding.py)."""
        guarded = copy.copy(self)
        guarded.loader = loader
        return guarded

    def _replacement(self, path: str, exc: BaseException):
        if self._index is None:
            self._index = {str(p): i for i, (p, _) in enumerate(self.samples)}
        start = self._index.get(path)
        if start is None:  # not one of the dataset's files: nothing to stand in for it
            raise BadImageError(f"{self.where}: the file {path!r} could not be read as an image "
                                f"({_reason(exc)}), and it is not in the dataset's list of samples, so no "
                                f"other file can take its place.", path=path) from exc
        self._report(path, exc)
        target = self.samples[start][1]
        count = len(self.samples)
        for step in range(1, count):
            other, other_target = self.samples[(start + step) % count]
            if other_target != target:
                continue
            try:
                return self.loader(other)
            except MemoryError:
                raise
            except Exception as other_exc:
                self._report(str(other), other_exc)
        raise BadImageError(f"{self.where}: no file of class {target!r} can be read (the last tried, {path!r}: "
                            f"{_reason(exc)}); {self.skip_key}: true needs at least one readable file per "
                            f"class. Check the copy of the data.", path=path) from exc

    def _report(self, path: str, exc: BaseException) -> None:
        logger.warning("%s: skipped the unreadable file %r (%s); %d skipped so far (%s: true); the next "
                       "readable file of its class is used in its place.", self.where, path, _reason(exc),
                       self.count.increment(), self.skip_key)


def _file_list(dataset) -> Optional[List]:
    for name in ("samples", "imgs"):
        samples = getattr(dataset, name, None)
        if isinstance(samples, list) and all(isinstance(s, tuple) and len(s) == 2 for s in samples[:1]):
            return samples
    return None


def skip_setting(block: dict, split_block: dict, dataset_path: str, split_path: str) -> Tuple[bool, str]:
    """``(skip, key path of the deciding key)``: the split's ``skip_bad_images`` if given, else the dataset's."""
    for where, path in ((split_block, split_path), (block, dataset_path)):
        if where.get(SKIP_KEY) is not None:
            value = where[SKIP_KEY]
            if not isinstance(value, bool):
                raise ConfigError(f"expected true or false, found {value!r}.", key_path=f"{path}.{SKIP_KEY}")
            return value, f"{path}.{SKIP_KEY}"
    return False, f"{dataset_path}.{SKIP_KEY}"


def guard_dataset(dataset, where: str, skip: bool = False, skip_key: str = SKIP_KEY):
    """Give ``dataset`` a :class:`GuardedLoader` when it reads ``samples`` through a ``loader``; returns it.

    ``skip`` on a dataset that reads its data some other way is refused, naming ``skip_key``."""
    loader, samples = getattr(dataset, "loader", None), _file_list(dataset)
    if callable(loader) and samples is not None:
        if isinstance(loader, GuardedLoader):
            loader = loader.loader
        dataset.loader = GuardedLoader(loader, samples, where, skip_key, skip)
    elif skip:
        raise ConfigError(f"{SKIP_KEY} applies to datasets that read each file of their 'samples' through a "
                          f"'loader' (ImageFolder, DatasetFolder); {type(dataset).__name__} reads its data "
                          f"another way.", key_path=skip_key, hint=f"Remove {SKIP_KEY} from this dataset.")
    return dataset
