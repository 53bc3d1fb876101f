"""``distillkit convert CONFIG``: the config in the other torchdistill generation's form (0.x <-> 1.x).

1.x -> 0.x is the engine's own reading of a 1.x file (:func:`distillkit.config.generation.from_1x`), with
each dataset built by ``!import_call`` written as a ``{type, splits}`` block where its class and transforms
have names the 0.x form can use (torchvision's or distillkit's); others stay as the ``!import_call`` they
were (distillkit reads both).  0.x -> 1.x writes ``key``/``kwargs``, ``weight``, ``WeightedSumLoss`` with
``SimpleLossWrapper`` for ``torch.nn`` terms, the org term as a sub term on the models' outputs (``'.'``),
samplers, ``src_ckpt``/``dst_ckpt`` and the datasets as ``!import_call``.  Either way the converted config
builds the same Experiment.  Values are written, not evaluated: ``!join`` results appear as strings.
"""
from __future__ import annotations

import copy
from typing import Dict, Optional

import yaml
from torchvision import datasets as tv_datasets
from torchvision import transforms as tv_transforms

from ..config.generation import from_1x, is_1x
from ..config.loader import load_config
from ..config.schema import STAGE_KEY
from ..config.tags import LAZY_TAGS, ImportCall, ImportGet, represent_lazy
from ..errors import ConfigError
from ..registry import DATASETS, LOSSES, TRANSFORMS
from ..utils import LazyTag

SAMPLER_KEYS = {True: "torch.utils.data.RandomSampler", False: "torch.utils.data.SequentialSampler"}
LOADER_KWARGS = ("batch_size", "num_workers", "pin_memory", "drop_last", "persistent_workers", "prefetch_factor")


class _Dumper(yaml.SafeDumper):
    """Writes lazy tags back as tags, and never makes YAML anchors of repeated values."""

    def ignore_aliases(self, data):
        return True


for _lazy in LAZY_TAGS:
    _Dumper.add_representer(_lazy, represent_lazy)


def dump(data: dict) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=120, default_flow_style=None)


def convert_config(path: str, overrides=(), to: Optional[str] = None) -> str:
    """The YAML text of ``path`` in the other generation's form (``to``: '0.x' or '1.x' to insist)."""
    config = load_config(path, overrides, validate=False)
    source = config.generation
    target = to or ("0.x" if source == "1.x" else "1.x")
    if target not in ("0.x", "1.x"):
        raise ConfigError(f"--to must be 0.x or 1.x, found {target!r}.")
    if source == target:
        raise ConfigError(f"{path} is already in torchdistill {source}'s form.", file=path)
    data = to_0x(config.as_written) if target == "0.x" else to_1x(dict(config))
    return f"# {path}, converted by distillkit from torchdistill {source}'s form to {target}'s\n" + dump(data)


# ---------------------------------------------------------------------------------------------- 1.x -> 0.x
def _short_name(key: str, namespace, registry) -> Optional[str]:
    """The 0.x ``type`` of a class given by its dotted path, when 0.x can name it."""
    module, _, name = str(key).rpartition(".")
    if module == namespace.__name__ and hasattr(namespace, name):
        return name
    if name in registry and f"{registry[name].__module__}.{registry[name].__qualname__}" == key:
        return name
    return None


def _transform_params(transform) -> Optional[list]:
    """A Compose of named transforms as ``transform_params``; None when it cannot be written so."""
    if not (isinstance(transform, ImportCall) and transform.get("key") == "torchvision.transforms.Compose"):
        return None
    steps = []
    for step in ((transform.get("init") or {}).get("kwargs") or {}).get("transforms") or []:
        name = _short_name(step.get("key"), tv_transforms, TRANSFORMS) if isinstance(step, ImportCall) else None
        if name is None:
            return None
        steps.append({"type": name, "params": dict((step.get("init") or {}).get("kwargs") or {})})
    return steps


def _dataset_0x(dataset_id: str, block) -> Optional[tuple]:
    """``(name, split, split block)`` of a dataset built by ``!import_call``, or None to keep the tag."""
    type_name = _short_name(block.get("key"), tv_datasets, DATASETS) if isinstance(block, ImportCall) else None
    init = block.get("init") or {}
    if type_name is None or init.get("args"):
        return None
    params = dict(init.get("kwargs") or {})
    if "transform" in params:
        steps = _transform_params(params["transform"])
        if steps is not None:
            params["transform_params"] = steps
            del params["transform"]
    name, _, split = str(dataset_id).rpartition("/")
    return (name or dataset_id, split or "default", {"dataset_id": dataset_id, "type": type_name, "params": params})


def to_0x(data: dict) -> Dict:
    internal, _ = from_1x(data)
    datasets: Dict = {}
    for dataset_id, block in (internal.get("datasets") or {}).items():
        converted = _dataset_0x(dataset_id, block)
        if converted is None:
            datasets[dataset_id] = block
            continue
        name, split, split_block = converted
        entry = datasets.setdefault(name, {"name": name, "type": split_block["type"], "splits": {}})
        if entry["type"] == split_block["type"]:
            del split_block["type"]
        entry["splits"][split] = split_block
    out = dict(internal, datasets=datasets)
    for role, model in (out.get("models") or {}).items():
        if isinstance(model, dict):
            if model.get("src_ckpt") == model.get("dst_ckpt") and model.get("dst_ckpt"):
                model["ckpt"] = model.pop("src_ckpt")
                model.pop("dst_ckpt")
            out["models"][role] = {"name": model.pop("name"), "params": model.pop("params"), **model}
    _sides_0x(out.get("train"))
    return out


def _sides_0x(train) -> None:
    """``auxiliary_model_wrapper`` under 0.x's name, ``special`` (in every stage)."""
    for key, block in (train or {}).items() if isinstance(train, dict) else ():
        if key in ("teacher", "student", "model") and isinstance(block, dict) and "auxiliary_model_wrapper" in block:
            train[key] = {("special" if k == "auxiliary_model_wrapper" else k): v for k, v in block.items()}
        elif STAGE_KEY.match(str(key)):
            _sides_0x(block)


# ---------------------------------------------------------------------------------------------- 0.x -> 1.x
def _class_path(name: str, namespace, registry) -> str:
    if name in registry:
        cls = registry[name]
        return f"{cls.__module__}.{cls.__qualname__}"
    return f"{namespace.__name__}.{name}"


def _call(key: str, kwargs: Optional[dict] = None) -> ImportCall:
    return ImportCall(key=key, init={"kwargs": dict(kwargs or {})})


def _dataset_1x(type_name: str, split_block: dict) -> ImportCall:
    params = dict(split_block.get("params") or {})
    steps = params.pop("transform_params", None)
    if steps:
        params["transform"] = _call("torchvision.transforms.Compose", {"transforms": [
            _call(_class_path(step["type"], tv_transforms, TRANSFORMS), step.get("params")) for step in steps]})
    return _call(_class_path(type_name, tv_datasets, DATASETS), params)


def _typed_1x(block):
    if not isinstance(block, dict) or "type" not in block:
        return block
    out = {"key": block["type"], "kwargs": dict(block.get("params") or {})}
    out.update({k: v for k, v in block.items() if k not in ("type", "params")})
    return out


def _loader_1x(block):
    if not isinstance(block, dict):
        return block
    out = {"dataset_id": block.get("dataset_id")}
    if block.get("dataset_wrapper"):
        out["dataset_wrapper"] = _typed_1x(block["dataset_wrapper"])
    out["sampler"] = {"class_or_func": ImportGet(key=SAMPLER_KEYS[bool(block.get("random_sample", False))]),
                      "kwargs": None}
    out["kwargs"] = {k: block[k] for k in LOADER_KWARGS if k in block}
    out.update({k: v for k, v in block.items() if k not in ("dataset_id", "dataset_wrapper", "random_sample")
                + LOADER_KWARGS})
    return out


def _side_1x(block):
    if not isinstance(block, dict):
        return block
    out = dict(block)
    special = out.pop("special", None) or out.pop("auxiliary_model_wrapper", None)
    if special:
        out["auxiliary_model_wrapper"] = _typed_1x(special)
    if isinstance(out.get("adaptations"), dict):
        out["adaptations"] = {name: _typed_1x(entry) for name, entry in out["adaptations"].items()}
    return out


SELF_SPEC = {"module_path": ".", "io": "output"}


def _org_term_1x(block: dict) -> dict:
    """The org term as 1.x writes it: a sub term on the models' outputs."""
    criterion = block["criterion"]
    if criterion["type"] in LOSSES and LOSSES.meta(criterion["type"]).get("term") == "org":
        kwargs = {"student_module_path": ".", "student_module_io": "output", "teacher_module_path": ".",
                  "teacher_module_io": "output", **(criterion.get("params") or {})}
        return {"criterion": {"key": criterion["type"], "kwargs": kwargs}, "weight": block.get("factor", 1.0)}
    return {"criterion": _typed_1x(criterion), "weight": block.get("factor", 1.0),
            "criterion_wrapper": {"key": "SimpleLossWrapper", "kwargs": {
                "input": dict(SELF_SPEC, is_from_teacher=False), "target": {"uses_label": True}}}}


def _sub_term_1x(term: dict) -> dict:
    criterion = term.get("criterion") or {}
    out = {"criterion": _typed_1x(criterion), "weight": term.get("factor", 1.0)}
    params = term.get("params") or {}
    io_specs = {k: (criterion.get("params") or {}).get(k, params.get(k)) for k in ("input", "target")}
    if criterion.get("type") not in LOSSES and all(isinstance(v, dict) for v in io_specs.values()):
        out["criterion"]["kwargs"] = {k: v for k, v in out["criterion"]["kwargs"].items()
                                      if k not in ("input", "target", "weights")}
        wrapper = dict(io_specs)
        weights = params.get("weights") or (criterion.get("params") or {}).get("weights")
        if weights:
            wrapper["weights"] = weights
        out["criterion_wrapper"] = {"key": "DictLossWrapper" if weights else "SimpleLossWrapper", "kwargs": wrapper}
    return out


def _criterion_1x(block):
    if not isinstance(block, dict):
        return block
    if block.get("type") != "GeneralizedCustomLoss":
        return {"key": "WeightedSumLoss", "kwargs": {"sub_terms": {"org": _org_term_1x({"criterion": block})}}}
    sub_terms = {}
    if (block.get("org_term") or {}).get("criterion"):
        sub_terms["org"] = _org_term_1x(block["org_term"])
    for name, term in (block.get("sub_terms") or {}).items():
        sub_terms[name] = _sub_term_1x(term)
    out = {"key": "WeightedSumLoss", "kwargs": {"sub_terms": sub_terms}}
    if block.get("func2extract_org_loss") == "extract_org_loss_dict":
        out["kwargs"]["model_term"] = {"weight": (block.get("org_term") or {}).get("factor", 1.0)}
    return out


def _train_1x(block):
    if not isinstance(block, dict):
        return block
    out = dict(block)
    for key in ("train_data_loader", "val_data_loader"):
        if key in out:
            out[key] = _loader_1x(out[key])
    for key in ("teacher", "student", "model"):
        if key in out:
            out[key] = _side_1x(out[key])
    for key in ("optimizer", "scheduler"):
        if key in out:
            out[key] = _typed_1x(out[key])
    if "criterion" in out:
        out["criterion"] = _criterion_1x(out["criterion"])
    for key in list(out):
        if STAGE_KEY.match(str(key)):
            out[key] = _train_1x(out[key])
    return out


def _model_1x(block: dict, role: str) -> dict:
    out = {"key": block.get("name"), "kwargs": dict(block.get("params") or {})}
    out.update({k: v for k, v in block.items() if k not in ("name", "params", "ckpt")})
    if block.get("ckpt"):
        out.setdefault("src_ckpt", block["ckpt"])
        if role != "teacher_model":
            out.setdefault("dst_ckpt", block["ckpt"])
    return out


def to_1x(data: dict) -> Dict:
    if is_1x(data):
        raise ConfigError("the config is already in torchdistill 1.x's form.")
    data = copy.deepcopy(data)
    datasets = {}
    for name, block in (data.get("datasets") or {}).items():
        if isinstance(block, LazyTag):
            datasets[name] = block
            continue
        for split_block in block.get("splits", {}).values():
            datasets[split_block["dataset_id"]] = _dataset_1x(split_block.get("type", block.get("type")), split_block)
    out = {"datasets": datasets,
           "models": {role: _model_1x(block, role) for role, block in (data.get("models") or {}).items()}}
    if data.get("imports"):
        out["dependencies"] = list(data["imports"])
    out["train"] = _train_1x(data.get("train"))
    if isinstance(data.get("test"), dict):
        out["test"] = dict(data["test"])
        if "test_data_loader" in out["test"]:
            out["test"]["test_data_loader"] = _loader_1x(out["test"]["test_data_loader"])
    out.update({k: v for k, v in data.items() if k not in out and k != "imports"})
    return out
