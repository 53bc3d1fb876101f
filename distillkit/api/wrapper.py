"""``DistillWrapper``: a student, a teacher and the DeiT loss in one module, as vit-pytorch users know it."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..errors import ConfigError, ShapeMismatchError
from ..losses.deit import deit_distillation_loss


class DistillWrapper(nn.Module):
    """``loss = DistillWrapper(student=..., teacher=..., temperature=3, alpha=0.5)(images, labels)``.

    The DeiT loss (Touvron et al., 2021) of :class:`~distillkit.losses.deit.DeiTDistillationLoss`, with
    vit-pytorch's batch-mean KL: the student gives ``(z_cls, z_dist)``, the teacher ``z_t`` (under
    ``torch.no_grad``, in eval mode, its parameters frozen), and

    ``L = (1 - alpha) * CE(z_cls, y) + alpha * L_distill``, where soft (``hard=False``):
    ``L_distill = T^2 * KL(softmax(z_t / T) || softmax(z_dist / T))`` (batch mean), hard:
    ``L_distill = CE(z_dist, argmax z_t)``.

    The student is a :class:`~distillkit.models.distillable_vit.DistillableViT` (its two heads are read in
    every mode) or any model that returns ``(class_logits, distillation_logits)``, e.g. a timm distilled ViT in
    training mode. ``temperature`` and ``alpha`` can be overridden per call; ``labels`` may be integer labels
    or soft targets (Mixup/CutMix).
    """

    def __init__(self, *, student: nn.Module, teacher: nn.Module, temperature: float = 1.0, alpha: float = 0.5,
                 hard: bool = False, label_smoothing: float = 0.0):
        super().__init__()
        _check_settings(temperature, alpha)
        self.student, self.teacher = student, teacher
        self.temperature, self.alpha, self.hard = float(temperature), float(alpha), bool(hard)
        self.label_smoothing = float(label_smoothing)
        teacher.requires_grad_(False)
        teacher.eval()

    def train(self, mode: bool = True) -> "DistillWrapper":
        super().train(mode)
        self.teacher.eval()  # the teacher is frozen: its batch-norm statistics and dropout stay as trained
        return self

    def forward(self, images: torch.Tensor, labels: torch.Tensor, temperature: Optional[float] = None,
                alpha: Optional[float] = None, **student_kwargs) -> torch.Tensor:
        temperature = self.temperature if temperature is None else float(temperature)
        alpha = self.alpha if alpha is None else float(alpha)
        _check_settings(temperature, alpha)
        with torch.no_grad():
            teacher_logits = self.teacher(images)
        class_logits, dist_logits = self._student_heads(images, **student_kwargs)
        return deit_distillation_loss(class_logits, dist_logits, teacher_logits, labels,
                                      "hard" if self.hard else "soft", alpha, temperature, "batchmean",
                                      self.label_smoothing)

    def _student_heads(self, images, **kwargs):
        if hasattr(self.student, "forward_heads"):
            return self.student.forward_heads(images, **kwargs)
        output = self.student(images, **kwargs)
        if not (isinstance(output, (tuple, list)) and len(output) == 2):
            raise ShapeMismatchError(
                f"DistillWrapper needs a student that returns (class_logits, distillation_logits); "
                f"{type(self.student).__name__} returned {type(output).__name__}. Use distillkit's DistillableViT, "
                f"or a timm distilled ViT (deit_*_distilled_*) with set_distilled_training(True) in training mode.")
        return output


def _check_settings(temperature: float, alpha: float) -> None:
    if not float(temperature) > 0:
        raise ConfigError(f"temperature must be > 0, found {temperature!r}.", key_path="temperature")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ConfigError(f"alpha weighs the distillation loss against the label loss, so it lies in [0, 1]; "
                          f"found {alpha!r}.", key_path="alpha")
