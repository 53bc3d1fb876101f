"""GeneralizedCustomLoss: a weighted sum of named loss terms (torchdistill's format)."""
from __future__ import annotations

import inspect
from typing import Dict, Optional, Tuple

import torch
from torch import nn


def takes_supp_dict(criterion: nn.Module) -> bool:
    """Whether a sub term's ``forward`` accepts ``supp_dict`` (the extras a dataset wrapper returns)."""
    try:
        return "supp_dict" in inspect.signature(criterion.forward).parameters
    except (TypeError, ValueError):
        return False


class GeneralizedCustomLoss(nn.Module):
    """``L = org_factor * org(z_s, z_t, y) + sum_i factor_i * sub_i(io_s, io_t, y)``.

    ``forward`` returns ``(total, {term name: value})``; the org term is named
    ``'org'``.  Terms with factor 0 are not computed.  A sub term whose ``forward``
    takes ``supp_dict`` also receives the batch's supplementary dict (indices,
    contrast indices, ... from a dataset wrapper).
    """

    def __init__(self, org_term: Optional[Tuple[nn.Module, float]] = None,
                 sub_terms: Optional[Dict[str, Tuple[nn.Module, float]]] = None):
        super().__init__()
        self.org_criterion = org_term[0] if org_term else None
        self.org_factor = float(org_term[1]) if org_term else 0.0
        sub_terms = sub_terms or {}
        self.sub_criteria = nn.ModuleDict({name: crit for name, (crit, _) in sub_terms.items()})
        self.sub_factors = {name: float(factor) for name, (_, factor) in sub_terms.items()}
        self.supp_readers = {name for name, crit in self.sub_criteria.items() if takes_supp_dict(crit)}

    def teacher_feature_readers(self):
        """Names of the active sub terms that read the teacher's io_dict (a term says so with
        ``reads_teacher_features``; a term that does not say is assumed to read them)."""
        return [name for name, crit in self.sub_criteria.items()
                if self.sub_factors[name] != 0 and getattr(crit, "reads_teacher_features", True)]

    def forward(self, student_output, teacher_output, student_io: dict, teacher_io: dict, targets,
                supp_dict: Optional[dict] = None):
        terms = {}
        if self.org_criterion is not None and self.org_factor != 0:
            terms["org"] = self.org_factor * self.org_criterion(student_output, teacher_output, targets)
        for name, criterion in self.sub_criteria.items():
            if self.sub_factors[name] == 0:
                continue
            extra = {"supp_dict": supp_dict} if name in self.supp_readers else {}
            terms[name] = self.sub_factors[name] * criterion(student_io, teacher_io, targets, **extra)
        if not terms:
            raise ValueError("the criterion has no term with a non-zero factor")
        total = torch.stack([t.float() for t in terms.values()]).sum()
        return total, terms
