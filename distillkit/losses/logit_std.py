"""Sun et al., "Logit Standardization in Knowledge Distillation", CVPR 2024."""
from __future__ import annotations

from typing import Optional

from torch import nn

from ..registry import register_loss
from .functional import read_matching_pair, soft_kl_divergence, standardize_logits


@register_loss(term="sub")
class LogitStdKDLoss(nn.Module):
    """KD with logit standardization (Sun, Ren, Li, Wang, Cao: "Logit Standardization in Knowledge
    Distillation", CVPR 2024).

    ``Z(z) = (z - mean(z)) / (eps + std(z))`` (per sample, over classes), then
    ``L = alpha * CE(z_s, y) + beta * tau^2 * KL(softmax(Z(z_t) / tau) || softmax(Z(z_s) / tau))``
    with ``beta = 1 - alpha`` when omitted.  As in torchdistill 1.1.5: when ``alpha`` is None or 0, or
    there are no targets, the bare KL term is returned (no ``beta * tau^2`` factor); the CE uses
    ``'mean'`` when ``reduction='batchmean'``.  The paper's recipe is ``alpha=0.5, beta=9, tau=2``.

    A sub term reading logits from ``io_dict[<side>_module_path][<side>_module_io]`` (hook ``fc``).
    """

    def __init__(self, student_module_path: str, student_module_io: str, teacher_module_path: str,
                 teacher_module_io: str, temperature: float, eps: float = 1e-7, alpha: Optional[float] = None,
                 beta: Optional[float] = None, reduction: str = "batchmean", label_smoothing: float = 0.0):
        super().__init__()
        self.student_module_path = student_module_path
        self.student_module_io = student_module_io
        self.teacher_module_path = teacher_module_path
        self.teacher_module_io = teacher_module_io
        self.temperature = float(temperature)
        self.eps = float(eps)
        self.alpha = alpha
        self.beta = (1 - alpha if alpha is not None else None) if beta is None else beta
        self.reduction = reduction
        self.cross_entropy = nn.CrossEntropyLoss(reduction="mean" if reduction == "batchmean" else reduction,
                                                 label_smoothing=label_smoothing)

    def forward(self, student_io_dict: dict, teacher_io_dict: dict, targets=None):
        z_s, z_t = read_matching_pair(student_io_dict, teacher_io_dict, self.student_module_path,
                                      self.student_module_io, self.teacher_module_path, self.teacher_module_io,
                                      "LogitStdKDLoss")
        soft = soft_kl_divergence(standardize_logits(z_s, self.eps), standardize_logits(z_t, self.eps),
                                  self.temperature, self.reduction)
        if not self.alpha or targets is None:
            return soft
        return self.alpha * self.cross_entropy(z_s, targets) + self.beta * self.temperature ** 2 * soft
