"""Factor transfer: Kim, Park & Kwak, "Paraphrasing Complex Network: Network Compression via Factor
Transfer", NeurIPS 2018.  Its paraphraser and translator are special modules
(``distillkit.models.special.factor_transfer``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_loss
from .features import select_features
from .functional import check_reduction, flatten_samples, l2_normalize
from .tat import ShapeMismatchError


@register_loss(term="sub")
class FTLoss(nn.Module):
    """Factor transfer (Kim et al., NeurIPS 2018), the loss of its second stage.

    With the teacher factor ``F_T`` (the paraphraser's output) and the student factor ``F_S`` (the
    translator's output), each flattened per sample:

    ``L = || F_T / ||F_T||_2 - F_S / ||F_S||_2 ||_p``.

    ``p == 1``: ``l1_loss`` with ``reduction`` (mean over every element, or sum); other ``p``: the per-sample
    p-norm, averaged (``'mean'``) or summed over the batch.  Reads the ``output`` of ``paraphraser_path`` on
    the teacher and of ``translator_path`` on the student.  A sub term.
    """

    def __init__(self, p: int = 1, reduction: str = "mean", paraphraser_path: str = "paraphraser",
                 translator_path: str = "translator"):
        super().__init__()
        self.norm_p = p
        self.reduction = check_reduction(reduction, "FTLoss")
        self.paraphraser_path = paraphraser_path
        self.translator_path = translator_path

    def forward(self, student_io_dict, teacher_io_dict, targets=None):
        teacher = select_features(teacher_io_dict, self.paraphraser_path, "output", "teacher", "FTLoss")
        student = select_features(student_io_dict, self.translator_path, "output", "student", "FTLoss")
        teacher, student = flatten_samples(teacher), flatten_samples(student)
        if teacher.shape != student.shape:
            raise ShapeMismatchError(
                f"FTLoss: the translator {self.translator_path!r} gives {tuple(student.shape)} values per batch "
                f"but the paraphraser {self.paraphraser_path!r} gives {tuple(teacher.shape)}; set the "
                f"translator's num_output_channels to the paraphraser's int(k * num_input_channels) and keep "
                f"both at the same spatial size.")
        teacher, student = l2_normalize(teacher, dim=1), l2_normalize(student, dim=1)
        if self.norm_p == 1:
            return F.l1_loss(student, teacher, reduction=self.reduction)
        per_sample = torch.norm(student - teacher, self.norm_p, dim=1)
        return per_sample.mean() if self.reduction == "mean" else per_sample.sum()
