"""Tian, Krishnan & Isola, "Contrastive Representation Distillation" (CRD), ICLR 2020."""
from __future__ import annotations

import logging
import math

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import register_loss
from .features import UnhookedPathError, select_features
from .relational import check_same_batch
from .tat import ShapeMismatchError

logger = logging.getLogger(__name__)


class AliasSampler:
    """Walker's alias method: ``draw(n)`` samples indices from a discrete distribution in O(1) each.

    Draws a uniform index ``kk`` (``random_``), then a Bernoulli of its kept probability, in the order
    torchdistill's ``CRDLoss.draw`` (and RepDistiller's ``AliasMethod``) uses, so equal seeds give equal draws."""

    def __init__(self, probs: torch.Tensor):
        probs = probs / probs.sum() if probs.sum() > 1 else probs
        k = len(probs)
        self.probs = (k * probs).float()
        self.alias = torch.zeros(k, dtype=torch.int64)
        smaller = torch.nonzero(self.probs < 1.0).flatten().tolist()
        larger = torch.nonzero(self.probs >= 1.0).flatten().tolist()
        while smaller and larger:
            small, large = smaller.pop(), larger.pop()
            self.alias[small] = large
            self.probs[large] = (self.probs[large] - 1.0) + self.probs[small]
            (smaller if self.probs[large] < 1.0 else larger).append(large)
        for index in smaller + larger:
            self.probs[index] = 1

    def to(self, device):
        self.probs, self.alias = self.probs.to(device), self.alias.to(device)
        return self

    def draw(self, n: int) -> torch.Tensor:
        kk = torch.zeros(n, dtype=torch.long, device=self.probs.device).random_(0, self.alias.size(0))
        keep = torch.bernoulli(self.probs.index_select(0, kk)).long()
        return kk * keep + self.alias.index_select(0, kk) * (1 - keep)


@register_loss(term="sub")
class CRDLoss(nn.Module):
    """Contrastive representation distillation (CRD), with its memory bank (NCE form, as the authors' code).

    Tian, Krishnan & Isola, "Contrastive Representation Distillation", ICLR 2020.  With student and teacher
    embeddings ``g^s(s), g^t(t)`` (``Linear4CRD``'s normalizer outputs, unit vectors), memory banks ``M^s, M^t``
    (one row per training sample), ``h(a, m) = exp(a . m / tau) / Z`` and ``K`` negatives drawn per sample,
    ``P_n = 1 / N`` (``N = num_samples``):

    ``L_NCE(x) = -1/b sum_i [ log h_i0 / (h_i0 + K P_n + eps) + sum_{k=1}^{K} log K P_n / (h_ik + K P_n + eps) ]``

    ``L = L_NCE(h(g^s, M^t[idx])) + L_NCE(h(g^t, M^s[idx]))``, where ``idx`` = (positive, negatives); ``Z`` is set
    once from the first batch (``mean h * output_size``); afterwards the positives' rows are updated,
    ``M[pos] <- normalize(momentum * M[pos] + (1 - momentum) * g)``.

    The indices come from CRDDatasetWrapper through the criterion's ``supp_dict`` (``pos_idx``, and
    ``contrast_idx`` (b, K + 1) with the positive first); without ``contrast_idx`` the negatives are drawn
    uniformly here.  Buffers ``params``, ``memory_v1`` (student memory), ``memory_v2`` (teacher memory) keep
    torchdistill's names, so its checkpoints load.
    """

    def __init__(self, student_norm_module_path, student_empty_module_path, teacher_norm_module_path,
                 input_size, output_size, num_negative_samples, num_samples, temperature=0.07, momentum=0.5,
                 eps=1e-7):
        super().__init__()
        for name, value in (("input_size", input_size), ("output_size", output_size),
                            ("num_negative_samples", num_negative_samples), ("num_samples", num_samples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"CRDLoss: {name} must be a positive integer, found {value!r}.")
        self.student_norm_module_path = student_norm_module_path
        self.student_empty_module_path = student_empty_module_path
        self.teacher_norm_module_path = teacher_norm_module_path
        self.eps = eps
        self.num_negative_samples = num_negative_samples
        self.num_samples = num_samples
        self.register_buffer("params", torch.tensor([num_negative_samples, temperature, -1, -1, momentum]))
        bound = 1.0 / math.sqrt(input_size / 3)
        self.register_buffer("memory_v1", torch.rand(output_size, input_size).mul_(2 * bound).add_(-bound))
        self.register_buffer("memory_v2", torch.rand(output_size, input_size).mul_(2 * bound).add_(-bound))
        self.sampler = AliasSampler(torch.ones(output_size))

    def normalization_constant(self, slot: int, scores: torch.Tensor) -> float:
        """``Z``: fixed from the first batch's scores as ``mean * output_size``, kept in ``params[slot]``."""
        if self.params[slot].item() < 0:
            self.params[slot] = scores.detach().mean() * self.memory_v1.size(0)
            logger.info("CRD normalization constant z_v%d is set to %.1f", slot - 1, self.params[slot].item())
        return self.params[slot].item()

    def contrast_memory(self, student, teacher, pos_idx, contrast_idx=None):
        """``(h(g^s, M^t[idx]), h(g^t, M^s[idx]))``, each ``(b, K + 1, 1)``; then the memory update."""
        k, temperature, momentum = int(self.params[0].item()), self.params[1].item(), self.params[4].item()
        batch, dim = student.size(0), self.memory_v1.size(1)
        if contrast_idx is None:
            self.sampler.to(student.device)
            contrast_idx = self.sampler.draw(batch * (self.num_negative_samples + 1)).view(batch, -1)
            contrast_idx.select(1, 0).copy_(pos_idx)
        student_memory = self.memory_v1.index_select(0, contrast_idx.view(-1)).detach().view(batch, k + 1, dim)
        teacher_memory = self.memory_v2.index_select(0, contrast_idx.view(-1)).detach().view(batch, k + 1, dim)
        teacher_scores = torch.exp(torch.bmm(student_memory, teacher.view(batch, dim, 1)) / temperature)
        student_scores = torch.exp(torch.bmm(teacher_memory, student.view(batch, dim, 1)) / temperature)
        z_student = self.normalization_constant(2, student_scores)
        z_teacher = self.normalization_constant(3, teacher_scores)
        with torch.no_grad():
            for memory, embedding in ((self.memory_v1, student), (self.memory_v2, teacher)):
                rows = memory.index_select(0, pos_idx.view(-1)) * momentum + embedding * (1 - momentum)
                memory.index_copy_(0, pos_idx, rows / rows.pow(2).sum(1, keepdim=True).pow(0.5))
        return student_scores / z_student, teacher_scores / z_teacher

    def contrast_loss(self, scores: torch.Tensor) -> torch.Tensor:
        """NCE loss of ``(b, K + 1, 1)`` scores whose first column is the positive pair."""
        batch, m = scores.shape[0], scores.size(1) - 1
        noise = m / float(self.num_samples)
        positive, negative = scores[:, 0], scores[:, 1:]
        log_d1 = torch.log(positive / (positive + noise + self.eps))
        log_d0 = torch.log(noise / (negative + noise + self.eps))
        return -(log_d1.sum() + log_d0.sum()) / batch

    def read_indices(self, student_io_dict, supp_dict, batch: int, device):
        if supp_dict is None:
            try:
                supp_dict = select_features(student_io_dict, self.student_empty_module_path, "input", "student",
                                            "CRDLoss")
            except UnhookedPathError:
                supp_dict = None
        if not isinstance(supp_dict, dict) or "pos_idx" not in supp_dict:
            raise ConfigError("CRDLoss needs each sample's index in the training set (supp_dict['pos_idx'], and "
                              "'contrast_idx'), which CRDDatasetWrapper adds: wrap the training dataset with it "
                              "(train.train_data_loader.dataset_wrapper).")
        pos_idx = torch.as_tensor(supp_dict["pos_idx"], device=device).long().view(-1)
        contrast_idx = supp_dict.get("contrast_idx")
        if contrast_idx is not None:
            contrast_idx = torch.as_tensor(contrast_idx, device=device).long()
            if tuple(contrast_idx.shape) != (batch, self.num_negative_samples + 1):
                raise ShapeMismatchError(f"CRDLoss: contrast_idx has shape {tuple(contrast_idx.shape)}, expected "
                                         f"({batch}, {self.num_negative_samples + 1}) = (batch, num_negative_samples "
                                         f"+ 1); give CRDLoss and CRDDatasetWrapper the same num_negative_samples.")
        largest = max(int(pos_idx.max()), int(contrast_idx.max()) if contrast_idx is not None else 0)
        if pos_idx.numel() != batch or largest >= self.memory_v1.size(0):
            raise ShapeMismatchError(f"CRDLoss: {pos_idx.numel()} positive indices for a batch of {batch}, largest "
                                     f"index {largest}, memory of {self.memory_v1.size(0)} rows; set output_size and "
                                     f"num_samples to the number of training samples.")
        return pos_idx, contrast_idx

    def forward(self, student_io_dict, teacher_io_dict, targets=None, supp_dict=None):
        student = select_features(student_io_dict, self.student_norm_module_path, "output", "student", "CRDLoss")
        teacher = select_features(teacher_io_dict, self.teacher_norm_module_path, "output", "teacher", "CRDLoss")
        check_same_batch(student, teacher, "CRDLoss")
        dim = self.memory_v1.size(1)
        if student.dim() != 2 or student.shape[1] != dim or teacher.shape[1:] != student.shape[1:]:
            raise ShapeMismatchError(f"CRDLoss: student embeddings {tuple(student.shape)} and teacher embeddings "
                                     f"{tuple(teacher.shape)} must both be (batch, input_size={dim}); set "
                                     f"Linear4CRD's linear_kwargs.out_features to input_size on both sides.")
        pos_idx, contrast_idx = self.read_indices(student_io_dict, supp_dict, student.shape[0], student.device)
        student, teacher = student.to(self.memory_v1.dtype), teacher.to(self.memory_v1.dtype)
        student_scores, teacher_scores = self.contrast_memory(student, teacher, pos_idx, contrast_idx)
        return self.contrast_loss(student_scores) + self.contrast_loss(teacher_scores)
