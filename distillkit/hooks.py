"""Forward hooks that capture module inputs and outputs into an io_dict.

``io_dict[path]['input' | 'output']`` holds what the module at dotted ``path``
received (its first positional argument) or returned during the last forward.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Iterable, Optional

from torch import nn

from .errors import ConfigError, nearest_names


def find_module(root: nn.Module, path: str, key_path: str = "forward_hook") -> nn.Module:
    """The submodule at dotted ``path`` (``'.'`` or ``''``: ``root`` itself, as in torchdistill; a negative index
    such as ``layer1.-1`` counts from the end of a Sequential/ModuleList); a miss names the nearest paths."""
    if path in (".", ""):
        return root
    module = root
    for part in str(path).split("."):
        child = module._modules.get(part)
        if child is None and part.startswith("-") and part[1:].isdigit() and part[1] != "0" \
                and isinstance(module, (nn.Sequential, nn.ModuleList)) and int(part) >= -len(module):
            child = module[int(part)]
        if child is None:
            raise _not_found(root, path, key_path)
        module = child
    return module


def _not_found(root: nn.Module, path: str, key_path: str) -> ConfigError:
    modules = dict(root.named_modules())
    names = [n for n in modules if n]
    hint = None
    if path.startswith("module.") or path.startswith("model.") and "model" not in modules:
        hint = "Paths are relative to the model (or to its special module, whose model is 'model')."
    return ConfigError(f"no module at path {path!r} in {type(root).__name__}.", key_path=key_path,
                       candidates=nearest_names(path, names), hint=hint or
                       "List the paths with: distillkit modules MODEL_NAME.")


def named_sequential(model: nn.Module, paths, where: str, adaptations: Optional[dict] = None) -> nn.Sequential:
    """The modules at ``paths``, in order, nested so that each keeps its dotted path (``layer4`` stays
    ``layer4``), as torchdistill's ``redesign_model`` builds them; ``+name`` is the adaptation module ``name``
    (kept under the name ``+name``, so hooks read ``+name``)."""
    tree = OrderedDict()
    adaptations = adaptations or {}
    for index, path in enumerate(paths):
        if path.startswith("+"):
            if path[1:] not in adaptations:
                raise ConfigError(f"{where}.sequential lists {path!r}, but {where}.adaptations declares no "
                                  f"{path[1:]!r}.", key_path=f"{where}.sequential.{index}",
                                  candidates=nearest_names(path[1:], adaptations))
            tree[path] = adaptations[path[1:]]
            continue
        module = find_module(model, path, f"{where}.sequential.{index}")
        node, names = tree, path.split(".")
        for name in names[:-1]:
            node = node.setdefault(name, OrderedDict())
            if not isinstance(node, OrderedDict):
                raise ConfigError(f"{where}.sequential lists {path!r} inside a module it already lists whole.",
                                  key_path=f"{where}.sequential.{index}")
        if names[-1] in node:
            raise ConfigError(f"{where}.sequential lists {path!r} twice.", key_path=f"{where}.sequential.{index}")
        node[names[-1]] = module

    def build(node):
        return nn.Sequential(OrderedDict((k, build(v) if isinstance(v, OrderedDict) else v) for k, v in node.items()))

    return build(tree)


class HookCapture:
    """Registers forward hooks on ``root`` and collects what they see into ``io_dict``."""

    def __init__(self, root: nn.Module, input_paths: Iterable[str] = (), output_paths: Iterable[str] = (),
                 key_path: str = "forward_hook"):
        self.io_dict: Dict[str, dict] = {}
        self.handles = []
        self.paths = []
        for io, paths in (("input", input_paths or ()), ("output", output_paths or ())):
            for index, path in enumerate(paths):
                module = find_module(root, path, f"{key_path}.{io}.{index}")
                self.handles.append(module.register_forward_hook(self._hook(path, io)))
                self.paths.append((path, io))

    def _hook(self, path: str, io: str):
        def capture(module, inputs, output):
            slot = self.io_dict.setdefault(path, {})
            if io == "input":
                slot["input"] = inputs[0] if len(inputs) == 1 else inputs
            else:
                slot["output"] = output

        return capture

    def pop(self) -> Dict[str, dict]:
        """The captured io_dict; the capture starts empty for the next forward."""
        captured, self.io_dict = self.io_dict, {}
        return captured

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
