"""torchdistill 1.x configs, read onto the same engine as the 0.x form.

torchdistill 1.0 renamed the config's keys (``key``/``kwargs`` for ``type``/``params``, ``weight`` for
``factor``, ``src_ckpt``/``dst_ckpt``, ``WeightedSumLoss`` with ``criterion_wrapper``, loaders with
``sampler: {class_or_func, kwargs}`` and ``kwargs``, ``auxiliary_model_wrapper``, ``dependencies``) and
builds datasets in the file with ``!import_call``.  :func:`is_1x` recognises that form from its own keys;
:func:`from_1x` rewrites it into the form the engine reads and returns a :class:`PathMap`, so an error
about an engine key names the key as the file wrote it (``train.optimizer.kwargs.lr``, not ``params.lr``).
``_``-prefixed keys are the file's scratch space (anchors) and are not read.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from ..errors import ConfigError
from ..utils import LazyTag
from .paths import join_path
from .schema import STAGE_KEY

LOADER_KEYS = ("train_data_loader", "val_data_loader")
SIDE_KEYS = ("teacher", "student", "model")
SAMPLERS = {"RandomSampler": True, "SequentialSampler": False}
WRAPPERS = ("SimpleLossWrapper", "DictLossWrapper")


class PathMap:
    """Key paths of the rewritten config -> the same keys as the file writes them: pairs of paths that differ in
    one renamed key (``train.optimizer.params`` -> ``train.optimizer.kwargs``), composed along a path."""

    def __init__(self):
        self.pairs: List[Tuple[str, str]] = []

    def add(self, internal: str, user: str) -> None:
        if internal != user:
            self.pairs.append((internal, user))

    def user_path(self, path: Optional[str]) -> Optional[str]:
        """``path`` as the file writes it: each rewritten key on it is put back (innermost first)."""
        unused = list(self.pairs)
        while path:
            matches = [pair for pair in unused if path == pair[0] or path.startswith(pair[0] + ".")]
            if not matches:
                break
            internal, user = max(matches, key=lambda pair: len(pair[0]))
            unused.remove((internal, user))
            path = user + path[len(internal):]
        return path


def is_1x(data: dict) -> bool:
    """Whether ``data`` is in torchdistill 1.x's form (a model with ``key``, a dataset built by a tag, a
    criterion or loader with ``kwargs``)."""
    models = data.get("models") if isinstance(data.get("models"), dict) else {}
    if any(isinstance(block, dict) and "key" in block for block in models.values()):
        return True
    datasets = data.get("datasets") if isinstance(data.get("datasets"), dict) else {}
    return any(isinstance(block, LazyTag) for block in datasets.values())


def _scratch_free(block: dict) -> dict:
    return {k: v for k, v in block.items() if not str(k).startswith("_")}


def _typed(block, path: str, pm: PathMap, names: Tuple[str, str] = ("type", "params")) -> dict:
    """``{key, kwargs, ...}`` -> ``{type, params, ...}`` (``names``: the engine's two names, a model's
    ``name``/``params``)."""
    if not isinstance(block, dict):
        return block
    out = {k: v for k, v in _scratch_free(block).items() if k not in ("key", "kwargs")}
    if "key" in block:
        out[names[0]] = block["key"]
    pm.add(join_path(path, names[0]), join_path(path, "key"))  # a missing key is named as the file would write it
    out[names[1]] = dict(block.get("kwargs") or {})
    pm.add(join_path(path, names[1]), join_path(path, "kwargs"))
    return out


def _model(block, path: str, pm: PathMap):
    out = _typed(block, path, pm, names=("name", "params"))
    destination = out.get("dst_ckpt") if isinstance(out, dict) else None
    if isinstance(destination, str) and destination and "experiment" not in out:
        out["experiment"] = destination.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return out


def _transforms(steps, path: str, pm: PathMap):
    return [_typed(step, f"{path}.{index}", pm) for index, step in enumerate(steps or [])]


def _dataset(block, path: str, pm: PathMap):
    """A dataset declared by name (``{key, splits: {<split>: {dataset_id, kwargs: {..., transform_configs}}}}``,
    as some 1.x sample configs write it); a dataset built by a tag is kept as it is."""
    if not isinstance(block, dict) or isinstance(block, LazyTag) or "key" not in block:
        return block
    out = {k: v for k, v in block.items() if k not in ("key", "splits")}
    out["type"] = block["key"]
    pm.add(join_path(path, "type"), join_path(path, "key"))
    out["splits"] = {}
    for split, split_block in (block.get("splits") or {}).items():
        split_path = f"{path}.splits.{split}"
        if not isinstance(split_block, dict):
            out["splits"][split] = split_block
            continue
        entry = {k: v for k, v in split_block.items() if k not in ("kwargs",)}
        params = dict(split_block.get("kwargs") or {})
        pm.add(f"{split_path}.params", f"{split_path}.kwargs")
        for old, new in (("transform_configs", "transform_params"),
                         ("target_transform_configs", "target_transform_params")):
            if old in params:
                params[new] = _transforms(params.pop(old), f"{split_path}.params.{new}", pm)
                pm.add(f"{split_path}.params.{new}", f"{split_path}.params.{old}")
        entry["params"] = params
        out["splits"][split] = entry
    return out


def _sampler_class(block) -> str:
    target = block.get("class_or_func") if isinstance(block, dict) else None
    if isinstance(target, dict):  # !import_get {key: 'torch.utils.data.RandomSampler'}
        target = target.get("key")
    return str(getattr(target, "__name__", target)).rpartition(".")[2]


def _loader(block, path: str, pm: PathMap):
    if not isinstance(block, dict):
        return block
    out = {k: v for k, v in _scratch_free(block).items()
           if k not in ("kwargs", "sampler", "batch_sampler", "dataset_wrapper")}
    for key, value in (block.get("kwargs") or {}).items():
        if key in block and block[key] != value:
            raise ConfigError(f"{key!r} is given twice, beside kwargs ({block[key]!r}) and in it ({value!r}); in the "
                              f"1.x form it belongs in kwargs (--set {join_path(path, 'kwargs.' + key)}=...).",
                              key_path=join_path(path, key))
        out[key] = value
        pm.add(join_path(path, key), join_path(path, f"kwargs.{key}"))
    sampler = block.get("sampler")
    if sampler is not None:
        name = _sampler_class(sampler)
        if name not in SAMPLERS:
            raise ConfigError(f"the sampler {name!r} is not supported: distillkit draws its own samples (shuffled or "
                              f"in order, split across processes, resumable mid-epoch); use RandomSampler or "
                              f"SequentialSampler.", key_path=join_path(path, "sampler.class_or_func"))
        out["random_sample"] = SAMPLERS[name]
        pm.add(join_path(path, "random_sample"), join_path(path, "sampler.class_or_func"))
    if block.get("batch_sampler") is not None:  # GroupedBatchSampler of the detection configs
        out["batch_sampler"] = _typed(block["batch_sampler"], join_path(path, "batch_sampler"), pm)
    if block.get("dataset_wrapper") is not None:
        out["dataset_wrapper"] = _typed(block["dataset_wrapper"], join_path(path, "dataset_wrapper"), pm)
    return out


def _side(block, path: str, pm: PathMap):
    if not isinstance(block, dict):
        return block
    out = _scratch_free(block)
    if isinstance(block.get("auxiliary_model_wrapper"), dict):
        wrapper_path = join_path(path, "auxiliary_model_wrapper")
        wrapper = out["auxiliary_model_wrapper"] = _typed(block["auxiliary_model_wrapper"], wrapper_path, pm)
        if "find_unused_parameters" in wrapper["params"]:  # 1.x gives it to the wrapper, which wraps itself in DDP
            out["find_unused_parameters"] = bool(wrapper["params"].pop("find_unused_parameters"))
            pm.add(join_path(path, "find_unused_parameters"), join_path(wrapper_path, "kwargs.find_unused_parameters"))
    if isinstance(block.get("adaptations"), dict):
        out["adaptations"] = {name: _typed(entry, join_path(path, f"adaptations.{name}"), pm)
                              for name, entry in block["adaptations"].items()}
    return out


def _sub_term(term, path: str, pm: PathMap):
    if not isinstance(term, dict):
        return term
    out = {k: v for k, v in _scratch_free(term).items() if k not in ("criterion", "criterion_wrapper", "weight")}
    out["criterion"] = _typed(term.get("criterion"), join_path(path, "criterion"), pm)
    if "weight" in term:
        out["factor"] = term["weight"]
        pm.add(join_path(path, "factor"), join_path(path, "weight"))
    wrapper = term.get("criterion_wrapper")
    if wrapper:
        wrapper_path = join_path(path, "criterion_wrapper")
        if not isinstance(wrapper, dict) or wrapper.get("key") not in WRAPPERS:
            raise ConfigError(f"criterion_wrapper {wrapper.get('key') if isinstance(wrapper, dict) else wrapper!r} "
                              f"is not supported; supported: {', '.join(WRAPPERS)}.",
                              key_path=join_path(wrapper_path, "key"))
        out["params"] = dict(wrapper.get("kwargs") or {})
        pm.add(join_path(path, "params"), join_path(wrapper_path, "kwargs"))
    return out


def _criterion(block, path: str, pm: PathMap):
    if not isinstance(block, dict) or block.get("key") != "WeightedSumLoss":
        return _typed(block, path, pm)
    kwargs = block.get("kwargs") or {}
    out = {k: v for k, v in _scratch_free(block).items() if k not in ("key", "kwargs", "func2extract_model_loss")}
    out["type"] = "GeneralizedCustomLoss"
    pm.add(join_path(path, "type"), join_path(path, "key"))
    out["sub_terms"] = {name: _sub_term(term, join_path(path, f"sub_terms.{name}"), pm)
                        for name, term in (kwargs.get("sub_terms") or {}).items()}
    pm.add(join_path(path, "sub_terms"), join_path(path, "kwargs.sub_terms"))
    model_term = kwargs.get("model_term")
    if isinstance(model_term, dict) and model_term.get("weight"):  # the model's own losses (a dict of them)
        out["org_term"] = {"factor": model_term["weight"]}
        out["func2extract_org_loss"] = "extract_org_loss_dict"
        pm.add(join_path(path, "org_term.factor"), join_path(path, "kwargs.model_term.weight"))
    return out


def _train(block, path: str, pm: PathMap):
    """One training block (``train`` or ``train.stage<N>``)."""
    if not isinstance(block, dict):
        return block
    out = _scratch_free(block)
    for key in LOADER_KEYS:
        if key in block:
            out[key] = _loader(block[key], join_path(path, key), pm)
    for key in SIDE_KEYS:
        if key in block:
            out[key] = _side(block[key], join_path(path, key), pm)
    for key in ("optimizer", "scheduler"):
        if key in block:
            out[key] = _typed(block[key], join_path(path, key), pm)
    for name in ("module_wise_configs", "module_wise_kwargs"):  # torchdistill 1.x reads module_wise_configs
        if isinstance(out.get("optimizer"), dict) and name in out["optimizer"]:
            optimizer_path = join_path(path, "optimizer")
            out["optimizer"]["module_wise_params"] = [
                _typed(entry, f"{optimizer_path}.module_wise_params.{index}", pm)
                for index, entry in enumerate(out["optimizer"].pop(name) or [])]
            pm.add(f"{optimizer_path}.module_wise_params", f"{optimizer_path}.{name}")
    if "criterion" in block:
        out["criterion"] = _criterion(block["criterion"], join_path(path, "criterion"), pm)
    for key, value in block.items():
        if STAGE_KEY.match(str(key)):
            out[key] = _train(value, join_path(path, key), pm)
    return out


def _imports(dependencies) -> List[str]:
    """torchdistill's ``dependencies`` (names, ``[name, package]`` or ``{name, package}``) as module names."""
    names = []
    for entry in [dependencies] if isinstance(dependencies, str) else dependencies or []:
        if isinstance(entry, dict):
            name, package = entry.get("name"), entry.get("package")
        elif isinstance(entry, (list, tuple)):
            name, package = entry[0], entry[1] if len(entry) > 1 else None
        else:
            name, package = entry, None
        names.append(f"{package}{name}" if package and str(name).startswith(".") else str(name))
    return names


def from_1x(data: dict) -> Tuple[Dict, PathMap]:
    """The engine's form of a torchdistill 1.x config, and where each rewritten key was in the file."""
    pm = PathMap()
    try:
        return _from_1x(data, pm), pm
    except ConfigError as exc:
        exc.key_path = pm.user_path(exc.key_path)
        raise


def _from_1x(data: dict, pm: PathMap) -> Dict:
    out = _scratch_free(data)
    if isinstance(data.get("datasets"), dict):
        out["datasets"] = {name: _dataset(block, f"datasets.{name}", pm) for name, block in data["datasets"].items()}
    if isinstance(data.get("models"), dict):
        out["models"] = {role: _model(block, f"models.{role}", pm) for role, block in data["models"].items()}
    if "train" in data:
        out["train"] = _train(data["train"], "train", pm)
    if isinstance(data.get("test"), dict) and "test_data_loader" in data["test"]:
        out["test"] = dict(data["test"], test_data_loader=_loader(data["test"]["test_data_loader"],
                                                                   "test.test_data_loader", pm))
    if "dependencies" in data:
        out.pop("dependencies")
        out["imports"] = list(data.get("imports") or []) + _imports(data["dependencies"])
        pm.add("imports", "dependencies")
    return out
