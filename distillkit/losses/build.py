"""The criterion from ``train.criterion``: loss names through the registry, then ``torch.nn``.

A ``torch.nn`` loss as an org term is called ``loss(student_output, targets)``.
As a sub term it reads its operands from the io_dicts, torchdistill style::

    criterion: {type: MSELoss, params: {input: {is_from_teacher: False, module_path: fc, io: output},
                                         target: {is_from_teacher: True, module_path: fc, io: output}}}

or, as torchdistill 0.x writes it, with ``input`` / ``target`` in the sub term's own ``params``::

    l2: {criterion: {type: MSELoss, params: {reduction: mean}}, params: {input: {...}, target: {...}}, factor: 1}

(``target: {uses_label: True}`` takes the labels instead).
"""
from __future__ import annotations

from typing import Optional

from torch import nn

from ..errors import ConfigError, nearest_names
from ..registry import LOSSES
from ..utils import call_with_params
from .composite import GeneralizedCustomLoss
from .features import SELF_PATH, select_features
from .org_loss import ORG_LOSS_EXTRACTORS, extract_org_loss_dict, extract_simple_org_loss
from .teacher_select import select_teacher
from ..errors import ShapeMismatchError


class OrgTermAdapter(nn.Module):
    """Calls a ``torch.nn`` loss as an org term: ``loss(student_output, targets)`` (on each output of a tuple)."""
    per_output = True
    reads_teacher = False

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss

    def forward(self, student_output, teacher_output, targets):
        return self.loss(student_output, targets)


def reads_teacher_features(*specs: dict) -> bool:
    """Whether io specs read a teacher tensor other than its output (``'.'``, which a teacher cache also has)."""
    return any(spec.get("is_from_teacher") and spec.get("module_path") != SELF_PATH for spec in specs)


class IOTermAdapter(nn.Module):
    """Calls a ``torch.nn`` loss on tensors read from the io_dicts (or the labels).  ``weights`` (torchdistill's
    ``DictLossWrapper``): the input is a dict output, the loss ``sum_k w_k * loss(input[k], target)``."""

    def __init__(self, loss: nn.Module, input: dict, target: dict, weights: Optional[dict] = None):
        super().__init__()
        self.loss = loss
        self.input_spec = input
        self.target_spec = target
        self.weights = dict(weights) if weights else None
        self.reads_teacher_features = reads_teacher_features(input, target)
        self.reads_teacher = any(spec.get("is_from_teacher") for spec in (input, target))

    @staticmethod
    def _read(spec, student_io, teacher_io, targets):
        if spec.get("uses_label"):
            return targets
        teacher = bool(spec.get("is_from_teacher", False))
        return select_features(teacher_io if teacher else student_io, spec["module_path"], spec.get("io", "output"),
                               "teacher" if teacher else "student", reader="a torch.nn loss term")

    @staticmethod
    def _describe(spec):
        if spec.get("uses_label"):
            return "the labels"
        side = "teacher" if spec.get("is_from_teacher") else "student"
        return f"the {side}'s {spec.get('io', 'output')} of {spec['module_path']!r}"

    def forward(self, student_io, teacher_io, targets):
        first = self._read(self.input_spec, student_io, teacher_io, targets)
        second = self._read(self.target_spec, student_io, teacher_io, targets)
        if self.weights is not None:
            return sum(weight * self.loss(first[key], second) for key, weight in self.weights.items())
        if not self.target_spec.get("uses_label") and hasattr(first, "shape") and hasattr(second, "shape") \
                and first.shape != second.shape:
            raise ShapeMismatchError(f"{type(self.loss).__name__} compares {self._describe(self.input_spec)}, shape "
                                     f"{tuple(first.shape)}, with {self._describe(self.target_spec)}, shape "
                                     f"{tuple(second.shape)}: hook layers of matching shapes, or add a special module "
                                     f"that projects one onto the other.")
        return self.loss(first, second)


class OrgIOAdapter(nn.Module):
    """Calls an org-term loss (``loss(student_output, teacher_output, targets)``: KDLoss, DKD, ...) as a sub
    term on tensors read from the io_dicts, as torchdistill 1.x places it (``student_module_path: '.'``, ...)."""

    def __init__(self, loss: nn.Module, student: dict, teacher: dict):
        super().__init__()
        self.loss = loss
        self.student_spec = dict(student, is_from_teacher=False)
        self.teacher_spec = dict(teacher, is_from_teacher=True)
        self.reads_teacher_features = reads_teacher_features(self.teacher_spec)

    def forward(self, student_io, teacher_io, targets):
        return self.loss(IOTermAdapter._read(self.student_spec, student_io, teacher_io, targets),
                         IOTermAdapter._read(self.teacher_spec, student_io, teacher_io, targets), targets)


IO_PATH_PARAMS = ("student_module_path", "student_module_io", "teacher_module_path", "teacher_module_io")


def _pop_io_specs(params: dict) -> dict:
    """torchdistill 1.x's ``{student,teacher}_module_{path,io}`` params of an org loss placed as a sub term."""
    return {side: {"module_path": params.pop(f"{side}_module_path", SELF_PATH),
                   "io": params.pop(f"{side}_module_io", "output")} for side in ("student", "teacher")}


def build_term(block: dict, key_path: str, org: bool, term_params: Optional[dict] = None) -> nn.Module:
    """One loss term from ``{type, params}``; ``term_params``: the sub term's own ``params`` (torchdistill 0.x
    puts a torch.nn loss's ``input`` / ``target`` there, beside ``criterion``)."""
    if not isinstance(block, dict) or "type" not in block:
        raise ConfigError("a loss term needs 'criterion: {type, params}'.", key_path=key_path)
    type_path = f"{key_path}.type"
    params_path = f"{key_path}.params"
    params = dict(block.get("params") or {})
    if block["type"] in LOSSES:
        declared = LOSSES.meta(block["type"]).get("term")
        placed = "org" if org else "sub"
        specs = _pop_io_specs(params) if declared == "org" and placed == "sub" and any(
            k in params for k in IO_PATH_PARAMS) else None
        if specs is None and declared is not None and declared != placed:
            where = {"org": "train.criterion.org_term.criterion (it is called on the model outputs)",
                     "sub": "train.criterion.sub_terms.<name>.criterion (it reads the hooked io_dicts)"}[declared]
            raise ConfigError(f"{block['type']} is registered as {'an org' if declared == 'org' else 'a sub'} term, "
                              f"but it is placed as {'an org' if org else 'a sub'} term here; move it to {where}.",
                              key_path=type_path)
        loss = call_with_params(LOSSES[block["type"]], params, params_path,
                                aliases=LOSSES.meta(block["type"]).get("aliases"))
        return loss if specs is None else OrgIOAdapter(loss, specs["student"], specs["teacher"])
    cls = LOSSES.resolve(block["type"], key_path=type_path, fallbacks=(("torch.nn", _nn_losses()),))
    if org:
        return OrgTermAdapter(call_with_params(cls, params, params_path))
    io_specs = {k: params.pop(k, None) or (term_params or {}).get(k) for k in ("input", "target")}
    if not all(isinstance(v, dict) for v in io_specs.values()):
        raise ConfigError(f"the torch.nn loss {block['type']!r} as a sub term needs params.input and params.target "
                          f"({{is_from_teacher, module_path, io}} or {{uses_label: True}}).", key_path=params_path)
    weights = params.pop("weights", None) or (term_params or {}).get("weights")
    return IOTermAdapter(call_with_params(cls, params, params_path), **io_specs, weights=weights)


class _NNLosses:
    """``torch.nn`` restricted to its loss classes, for lookup and suggestions."""

    def __dir__(self):
        return [n for n in dir(nn) if n.endswith("Loss")]

    def __getattr__(self, name):
        if name.endswith("Loss") and hasattr(nn, name):
            return getattr(nn, name)
        raise AttributeError(name)


def _nn_losses():
    return _NNLosses()


def _factor(term: dict, key_path: str, per_key: bool = False):
    """A term's ``factor``: a number (an org term also takes ``{output key: number}``, as torchdistill)."""
    factor = term.get("factor", 1.0)
    if per_key and isinstance(factor, dict):
        return {str(key): _factor({"factor": value}, f"{key_path}.factor.{key}") for key, value in factor.items()}
    if isinstance(factor, bool) or not isinstance(factor, (int, float)):
        raise ConfigError(f"expected a number, found {factor!r}.", key_path=f"{key_path}.factor")
    return float(factor)


def _org_extractor(block: dict, key_path: str):
    name = block.get("func2extract_org_loss")
    if name is None:
        return extract_simple_org_loss
    if name not in ORG_LOSS_EXTRACTORS:
        raise ConfigError(f"func2extract_org_loss {name!r} is not supported.",
                          key_path=f"{key_path}.func2extract_org_loss",
                          candidates=nearest_names(str(name), ORG_LOSS_EXTRACTORS) or sorted(ORG_LOSS_EXTRACTORS))
    return ORG_LOSS_EXTRACTORS[name]


def _is_zero(factor) -> bool:
    return all(v == 0 for v in factor.values()) if isinstance(factor, dict) else factor == 0


def build_criterion(block: dict, key_path: str = "train.criterion",
                    teachers: Optional[list] = None) -> GeneralizedCustomLoss:
    """``GeneralizedCustomLoss`` from its block; any other ``type`` is a single org term of factor 1.
    ``teachers``: the names of ``models.teachers``, which a term chooses from with ``teacher: <name>``."""
    if block.get("type") != "GeneralizedCustomLoss":
        return GeneralizedCustomLoss(org_term=(select_teacher(build_term(block, key_path, org=True), None, teachers,
                                                              key_path, org=True), 1.0), key_path=key_path)
    extractor = _org_extractor(block, key_path)
    org_term = None
    org_block = block.get("org_term")
    org_path = f"{key_path}.org_term"
    if org_block and org_block.get("criterion"):
        org_term = (select_teacher(build_term(org_block["criterion"], f"{org_path}.criterion", org=True),
                                   org_block.get("teacher"), teachers, org_path, org=True),
                    _factor(org_block, org_path, per_key=True))
    elif org_block and extractor is extract_org_loss_dict:  # the model's own losses: no criterion to build
        org_term = (None, _factor(org_block, org_path, per_key=True))
    sub_terms = {}
    for name, term in (block.get("sub_terms") or {}).items():
        term_path = f"{key_path}.sub_terms.{name}"
        if not isinstance(term, dict):
            raise ConfigError("a sub term needs 'criterion: {type, params}' and 'factor'.", key_path=term_path)
        criterion = build_term(term.get("criterion"), f"{term_path}.criterion", org=False,
                               term_params=term.get("params"))
        sub_terms[name] = (select_teacher(criterion, term.get("teacher"), teachers, term_path, org=False),
                           _factor(term, term_path))
    if org_term is None and not sub_terms:
        raise ConfigError("GeneralizedCustomLoss has neither an org_term nor sub_terms.", key_path=key_path)
    if all(_is_zero(factor) for _, factor in ([org_term] if org_term else []) + list(sub_terms.values())):
        raise ConfigError("every term of the criterion has factor 0: nothing would be trained.", key_path=key_path,
                          hint="Give at least one term a non-zero factor.")
    return GeneralizedCustomLoss(org_term, sub_terms, extractor, key_path=key_path)
