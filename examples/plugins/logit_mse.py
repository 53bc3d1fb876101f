"""A complete new loss term for distillkit: MSE between student and teacher logits (Ba & Caruana, 2014)."""
import torch.nn.functional as F
from torch import nn

from distillkit import register_loss


@register_loss
class LogitMSE(nn.Module):
    """Ba & Caruana, "Do Deep Nets Really Need to be Deep?" (2014): L = mean((z_s - z_t)^2). An org term."""

    def forward(self, student_output, teacher_output, targets):
        return F.mse_loss(student_output, teacher_output)
