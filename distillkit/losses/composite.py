"""GeneralizedCustomLoss: a weighted sum of named loss terms (torchdistill's format)."""
from __future__ import annotations

import inspect
from typing import Callable, Dict, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from ..errors import ConfigError
from .features import SELF_PATH
from .org_loss import extract_org_loss_dict, extract_simple_org_loss

OrgFactor = Union[float, Dict[str, float]]


def takes_supp_dict(criterion: nn.Module) -> bool:
    """Whether a sub term's ``forward`` accepts ``supp_dict`` (the extras a dataset wrapper returns)."""
    try:
        return "supp_dict" in inspect.signature(criterion.forward).parameters
    except (TypeError, ValueError):
        return False


class GeneralizedCustomLoss(nn.Module):
    """``L = org_factor * org(z_s, z_t, y) + sum_i factor_i * sub_i(io_s, io_t, y)``.

    ``org`` reads the outputs through ``extract_org_loss`` (losses/org_loss.py: on each output of a
    tuple, each entry of a dict, ...), its losses summed.

    ``forward`` returns ``(total, {term name: value})``; the org term is named
    ``'org'``.  Terms with factor 0 are not computed.  A sub term whose ``forward``
    takes ``supp_dict`` also receives the batch's supplementary dict (indices,
    contrast indices, ... from a dataset wrapper).
    """

    def __init__(self, org_term: Optional[Tuple[Optional[nn.Module], OrgFactor]] = None,
                 sub_terms: Optional[Dict[str, Tuple[nn.Module, float]]] = None,
                 extract_org_loss: Callable = extract_simple_org_loss, key_path: str = "train.criterion"):
        super().__init__()
        self.key_path = key_path
        self.org_criterion = org_term[0] if org_term else None
        factor = org_term[1] if org_term else 0.0
        self.org_factor = {k: float(v) for k, v in factor.items()} if isinstance(factor, dict) else float(factor)
        self.extract_org_loss = extract_org_loss
        sub_terms = sub_terms or {}
        self.sub_criteria = nn.ModuleDict({name: crit for name, (crit, _) in sub_terms.items()})
        self.sub_factors = {name: float(factor) for name, (_, factor) in sub_terms.items()}
        self.supp_readers = {name for name, crit in self.sub_criteria.items() if takes_supp_dict(crit)}

    @property
    def org_active(self) -> bool:
        reads = self.org_criterion is not None or self.extract_org_loss is extract_org_loss_dict
        return reads and self.org_factor != 0

    def org_loss(self, student_output, teacher_output, targets) -> torch.Tensor:
        """The org term: the extracted losses, summed with ``org_factor`` (a number, or a factor per key)."""
        try:
            losses = self.extract_org_loss(self.org_criterion, student_output, teacher_output, targets)
        except TypeError as exc:
            if self.extract_org_loss is extract_simple_org_loss and isinstance(student_output, Mapping):
                raise self._whole_output_dict_error(student_output) from exc
            raise
        if isinstance(self.org_factor, dict):
            return sum(self.org_factor.get(str(key), 0.0) * value for key, value in losses.items())
        return self.org_factor * sum(losses.values())

    def _whole_output_dict_error(self, student_output) -> ConfigError:
        loss_name = type(getattr(self.org_criterion, "loss", self.org_criterion)).__name__  # inside OrgTermAdapter
        return ConfigError(
            f"the org term's {loss_name} was given the model's whole output, a dict of "
            f"{sorted(student_output)} (torchvision's segmentation models return 'out' and 'aux'): "
            f"func2extract_org_loss is unset, and torchdistill's default (extract_simple_org_loss) passes the dict on, "
            f"so it fails the same way in torchdistill.", key_path=f"{self.key_path}.func2extract_org_loss",
            hint="Set func2extract_org_loss: 'extract_simple_org_loss_dict' (one loss per output) with "
                 "org_term.factor: {out: 1.0, aux: 0.5}, as torchdistill's other segmentation configs do.")

    def teacher_feature_readers(self):
        """Names of the active sub terms that read the teacher's io_dict (a term says so with
        ``reads_teacher_features``; a term that does not say is assumed to read them)."""
        return [name for name, crit in self.sub_criteria.items()
                if self.sub_factors[name] != 0 and getattr(crit, "reads_teacher_features", True)]

    def forward(self, student_output, teacher_output, student_io: dict, teacher_io: dict, targets,
                supp_dict: Optional[dict] = None):
        terms = {}
        if self.org_active:
            terms["org"] = self.org_loss(student_output, teacher_output, targets)
        student_io = {SELF_PATH: {"output": student_output}, **student_io}  # the model's output, as torchdistill 1.x
        teacher_io = {SELF_PATH: {"output": teacher_output}, **teacher_io}
        for name, criterion in self.sub_criteria.items():
            if self.sub_factors[name] == 0:
                continue
            extra = {"supp_dict": supp_dict} if name in self.supp_readers else {}
            terms[name] = self.sub_factors[name] * criterion(student_io, teacher_io, targets, **extra)
        if not terms:
            raise ValueError("the criterion has no term with a non-zero factor")
        total = torch.stack([t.float() for t in terms.values()]).sum()
        return total, terms
