"""Dotted key paths into nested dicts and lists: ``train.optimizer.params.lr``."""
from __future__ import annotations

from typing import Any, List

_MISSING = object()


def split_path(key_path: str) -> List[str]:
    return [part for part in str(key_path).split(".") if part != ""]


def join_path(*parts) -> str:
    return ".".join(str(p) for p in parts if p is not None and p != "")


def get_path(tree: Any, key_path: str, default: Any = _MISSING) -> Any:
    """The value at ``key_path``; ``default`` (or KeyError) where it is absent."""
    node = tree
    for part in split_path(key_path):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            if default is _MISSING:
                raise KeyError(key_path)
            return default
    return node
