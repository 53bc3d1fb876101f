"""Reading features out of an io_dict, with errors that name the missing path."""
from __future__ import annotations

from ..errors import UnhookedPathError, nearest_names


def select_features(io_dict: dict, path, io: str = "output", side: str = "student", reader: str = "loss"):
    """``io_dict[path][io]``; a list of paths gives the list of their tensors."""
    if isinstance(path, (list, tuple)):
        return [select_features(io_dict, p, io, side, reader) for p in path]
    slot = io_dict.get(path)
    if slot is None or io not in slot:
        hooked = [f"{p}:{k}" for p, v in io_dict.items() for k in v]
        raise UnhookedPathError(
            f"{reader} reads the {side}'s {io} of {path!r}, but no forward hook captured it. Add {path!r} to "
            f"train.{side}.forward_hook.{io}. Captured on the {side}: {', '.join(sorted(hooked)) or 'nothing'}."
            + (f" Nearest: {', '.join(nearest_names(path, list(io_dict)))}." if nearest_names(path, list(io_dict)) else ""))
    return slot[io]
