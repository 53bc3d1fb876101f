"""Relational knowledge: losses on how samples relate to each other (PKT, RKD, SPKD, CCKD).

Each compares a batch-by-batch structure (probabilities, distances, angles, similarities,
correlations) built from the student's features with the same structure from the teacher's,
so student and teacher features may have different widths; only the batch must agree.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import register_loss
from .features import select_features
from .functional import (check_reduction, cosine_gram, flatten_samples, normalized_gram, pairwise_angles,
                         pairwise_distances, taylor_gaussian_kernel)
from .tat import ShapeMismatchError


def check_same_batch(student: torch.Tensor, teacher: torch.Tensor, where: str) -> None:
    """A ShapeMismatchError unless student and teacher features cover the same number of samples."""
    if student.shape[0] != teacher.shape[0]:
        raise ShapeMismatchError(f"{where}: the student's features have shape {tuple(student.shape)} and the "
                                 f"teacher's {tuple(teacher.shape)}, but both must hold the same batch (dimension 0). "
                                 f"Hook layers that see the same images on both sides.")


def read_student_teacher(student_io, teacher_io, student_path, student_io_name, teacher_path, teacher_io_name,
                         where: str):
    """``(student features, teacher features)`` from the io_dicts, with the batch checked."""
    student = select_features(student_io, student_path, student_io_name, "student", where)
    teacher = select_features(teacher_io, teacher_path, teacher_io_name, "teacher", where)
    check_same_batch(student, teacher, where)
    return student, teacher


@register_loss(term="sub")
class PKTLoss(nn.Module):
    """Probabilistic knowledge transfer (PKT).

    Passalis & Tefas, "Learning Deep Representations with Probabilistic Knowledge Transfer", ECCV 2018.
    With cosine-similarity kernels turned into conditional probabilities,

    ``p_{i|j} = K(x_i, x_j) / sum_k K(x_k, x_j)``,  ``K(a, b) = (cos(a, b) + 1) / 2``,

    ``L = mean_{i,j} p^t_{i|j} log((p^t_{i|j} + eps) / (p^s_{i|j} + eps))`` (the mean over all N^2 entries,
    as torchdistill and the authors' code compute it; rows are normalised over j).
    """

    def __init__(self, student_module_path, student_module_io, teacher_module_path, teacher_module_io,
                 eps=0.0000001):
        super().__init__()
        self.student_module_path = student_module_path
        self.student_module_io = student_module_io
        self.teacher_module_path = teacher_module_path
        self.teacher_module_io = teacher_module_io
        self.eps = float(eps)

    def conditional_probabilities(self, features: torch.Tensor) -> torch.Tensor:
        similarity = (cosine_gram(flatten_samples(features), self.eps) + 1.0) / 2.0
        return similarity / similarity.sum(dim=1, keepdim=True)

    def forward(self, student_io_dict, teacher_io_dict, targets=None):
        student, teacher = read_student_teacher(student_io_dict, teacher_io_dict, self.student_module_path,
                                                self.student_module_io, self.teacher_module_path,
                                                self.teacher_module_io, "PKTLoss")
        p_s = self.conditional_probabilities(student)
        p_t = self.conditional_probabilities(teacher)
        return torch.mean(p_t * torch.log((p_t + self.eps) / (p_s + self.eps)))


@register_loss(term="sub")
class RKDLoss(nn.Module):
    """Relational knowledge distillation (RKD): distance-wise and angle-wise.

    Park, Kim, Lu & Cho, "Relational Knowledge Distillation", CVPR 2019.

    ``psi_D(t_i, t_j) = ||t_i - t_j||_2 / mu``  with ``mu`` the mean over distinct pairs,
    ``psi_A(t_i, t_j, t_k) = <(t_i - t_j) / ||t_i - t_j||, (t_k - t_j) / ||t_k - t_j||>``,

    ``L = dist_factor * l_delta(psi_D^s, psi_D^t) + angle_factor * l_delta(psi_A^s, psi_A^t)``

    with ``l_delta`` the Huber (smooth L1) loss reduced by ``reduction``; features are flattened per
    sample, the teacher's structures carry no gradient.  A factor of 0 (or None) skips its term.
    """

    def __init__(self, student_output_path, teacher_output_path, dist_factor, angle_factor, reduction):
        super().__init__()
        check_reduction(reduction, "RKDLoss")  # not 'none': a loss term returns one number
        self.student_output_path = student_output_path
        self.teacher_output_path = teacher_output_path
        self.dist_factor = dist_factor
        self.angle_factor = angle_factor
        self.reduction = reduction

    @staticmethod
    def normalized_distances(e: torch.Tensor) -> torch.Tensor:
        distances = pairwise_distances(e, squared=False)
        return distances / distances[distances > 0].mean()

    def forward(self, student_io_dict, teacher_io_dict, targets=None):
        student, teacher = read_student_teacher(student_io_dict, teacher_io_dict, self.student_output_path,
                                                "output", self.teacher_output_path, "output", "RKDLoss")
        student, teacher = student.flatten(1), teacher.flatten(1)
        loss = student.new_zeros(())
        if self.dist_factor:
            with torch.no_grad():
                t_d = self.normalized_distances(teacher)
            s_d = self.normalized_distances(student)
            loss = loss + self.dist_factor * F.smooth_l1_loss(s_d, t_d, reduction=self.reduction)
        if self.angle_factor:
            with torch.no_grad():
                t_a = pairwise_angles(teacher).reshape(-1)
            s_a = pairwise_angles(student).reshape(-1)
            loss = loss + self.angle_factor * F.smooth_l1_loss(s_a, t_a, reduction=self.reduction)
        return loss


def batch_reduce(loss: torch.Tensor, batch_size: int, reduction: str) -> torch.Tensor:
    """``loss / b^2`` for ``'batchmean'``, ``loss`` as it is for ``'sum'``."""
    return loss / (batch_size ** 2) if reduction == "batchmean" else loss


BATCH_REDUCTIONS = ("batchmean", "sum")  # torchdistill: / b^2 for 'batchmean', the plain sum for any other value


@register_loss(term="sub")
class SPKDLoss(nn.Module):
    """Similarity-preserving knowledge distillation (SPKD).

    Tung & Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019.
    With ``Q = vec(A)`` per sample ``(b, chw)``, ``G~ = Q Q^T`` and ``G = G~`` with each row normalised,

    ``L = 1 / b^2 * ||G^t - G^s||_F^2``  (``reduction='batchmean'``; ``'sum'`` drops the ``1 / b^2``).

    As torchdistill (0.x and 1.x) computes it, the rows are divided by their L1 norm
    (``normalize(G~, 1)`` passes 1 as ``p``); the paper and the authors' code use the L2 norm.
    """

    def __init__(self, student_output_path, teacher_output_path, reduction):
        super().__init__()
        check_reduction(reduction, "SPKDLoss", BATCH_REDUCTIONS)
        self.student_output_path = student_output_path
        self.teacher_output_path = teacher_output_path
        self.reduction = reduction

    def forward(self, student_io_dict, teacher_io_dict, targets=None):
        student, teacher = read_student_teacher(student_io_dict, teacher_io_dict, self.student_output_path,
                                                "output", self.teacher_output_path, "output", "SPKDLoss")
        g_s = normalized_gram(flatten_samples(student), p=1)
        g_t = normalized_gram(flatten_samples(teacher), p=1)
        return batch_reduce((g_t - g_s).pow(2).sum(), teacher.shape[0], self.reduction)


@register_loss(term="sub")
class CCKDLoss(nn.Module):
    """Correlation congruence knowledge distillation (CCKD), the correlation term.

    Peng et al., "Correlation Congruence for Knowledge Distillation", ICCV 2019.
    With embeddings ``f`` (``Linear4CCKD``'s ``linear`` outputs) and a kernel ``k``, ``C_ij = k(f_i, f_j)``:
    ``'bilinear'``: ``k(a, b) = a^T b``; ``'gaussian'``: the ``max_p``-th order Taylor series of
    ``exp(-gamma ||a - b||^2)``, i.e. ``exp(-2 gamma) sum_{p=0}^{P} (2 gamma)^p / p! (a^T b)^p`` (exact for
    unit-norm embeddings; as in torchdistill, the embeddings are not normalised first).

    ``L = ||C^s - C^t||_2 / b^2`` (``reduction='batchmean'``; ``'sum'`` drops the ``1 / b^2``).  As in
    torchdistill, the Frobenius norm is not squared (the paper's Eq. 6 squares it).  The paper's KD
    and CE terms are separate terms of the criterion.

    ``kernel_config``: ``{type: 'gaussian', gamma, max_p}`` or ``{type: 'bilinear'}``.  torchdistill's
    sample configs (0.x and 1.x alike) name it ``kernel_params``, and 1.x's writes ``key`` for ``type``;
    both spellings are accepted here (torchdistill 1.1.5's own code reads only ``kernel_config.type``).
    """

    def __init__(self, student_linear_path, teacher_linear_path, kernel_config=None, reduction="batchmean",
                 kernel_params=None):
        super().__init__()
        check_reduction(reduction, "CCKDLoss", BATCH_REDUCTIONS)
        if (kernel_config is None) == (kernel_params is None):
            raise ConfigError("CCKDLoss needs exactly one of kernel_config (torchdistill 1.1.5's code) and "
                              "kernel_params (its sample configs): {type: 'gaussian', gamma, max_p} or "
                              "{type: 'bilinear'}.")
        kernel_config = kernel_config if kernel_config is not None else kernel_params
        if not isinstance(kernel_config, dict):
            raise ConfigError(f"CCKDLoss: kernel_config must be {{type: 'gaussian', gamma, max_p}} or "
                              f"{{type: 'bilinear'}}, found {kernel_config!r}.")
        kernel = dict(kernel_config)
        if "type" in kernel and "key" in kernel:
            raise ConfigError("CCKDLoss: kernel_config gives both 'type' and 'key'; keep 'type'.")
        self.kernel_type = kernel.pop("type", kernel.pop("key", None))
        if self.kernel_type not in ("gaussian", "bilinear"):
            raise ConfigError(f"CCKDLoss: kernel_config type must be 'gaussian' or 'bilinear', found "
                              f"{self.kernel_type!r}.")
        expected = {"gamma", "max_p"} if self.kernel_type == "gaussian" else set()
        if set(kernel) != expected:
            raise ConfigError(f"CCKDLoss: the {self.kernel_type} kernel takes "
                              f"{', '.join(sorted(expected)) or 'no other key'} in kernel_config, found "
                              f"{', '.join(sorted(kernel)) or 'none'}.")
        self.gamma = float(kernel["gamma"]) if "gamma" in kernel else None
        self.max_p = int(kernel["max_p"]) if "max_p" in kernel else None
        self.student_linear_path = student_linear_path
        self.teacher_linear_path = teacher_linear_path
        self.reduction = reduction

    def correlation(self, embeddings: torch.Tensor) -> torch.Tensor:
        if self.kernel_type == "bilinear":
            return embeddings @ embeddings.t()
        return taylor_gaussian_kernel(embeddings, self.gamma, self.max_p)

    def forward(self, student_io_dict, teacher_io_dict, targets=None):
        student, teacher = read_student_teacher(student_io_dict, teacher_io_dict, self.student_linear_path,
                                                "output", self.teacher_linear_path, "output", "CCKDLoss")
        difference = self.correlation(student) - self.correlation(teacher)
        return batch_reduce(torch.linalg.vector_norm(difference), teacher.shape[0], self.reduction)
