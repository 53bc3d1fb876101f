"""Xu, Liu, Li, Loy, "Knowledge Distillation Meets Self-Supervision" (SSKD), ECCV 2020.

Batches hold each image followed by its three rotations (90, 180, 270 degrees), as
``SSKDDatasetWrapper`` and ``SSWrapper4SSKD`` (distillkit.models.special.sskd) lay them out:
rows ``4i`` are the originals ("normal"), rows ``4i + 1 .. 4i + 3`` their rotations ("aug").
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import register_loss
from .features import select_features
from .functional import cosine_similarity_matrix, soft_kl_divergence
from .tat import ShapeMismatchError


def split_views(batch_size: int, where: str):
    """Boolean masks of the original and rotated rows of a batch of 4-view groups."""
    if batch_size % 4:
        raise ShapeMismatchError(f"{where}: SSKD batches hold each image and its 3 rotations (4 rows per image), "
                                 f"but this batch has {batch_size} rows, not a multiple of 4. Wrap the training "
                                 f"dataset in SSKDDatasetWrapper and the model in SSWrapper4SSKD.")
    index = torch.arange(batch_size)
    return index % 4 == 0, index % 4 != 0


def rotation_similarities(embeddings: torch.Tensor, normal: torch.Tensor, aug: torch.Tensor) -> torch.Tensor:
    """``S_ij = cos(e(aug_i), e(normal_j))``: each rotated view against every original, ``(3B, B)``."""
    return cosine_similarity_matrix(embeddings[aug], embeddings[normal])


def own_image_index(num_images: int, device) -> torch.Tensor:
    """For each rotated row, the index of its original image: ``[0, 0, 0, 1, 1, 1, ...]``."""
    return torch.arange(num_images, device=device).repeat_interleave(3)


def confident_rows(scores: torch.Tensor, labels: torch.Tensor, keep_ratio: float) -> torch.Tensor:
    """SSKD's error-level ranking: the rows where ``labels`` ranks first in ``scores``, plus the ``keep_ratio``
    share of the others with the best rank of the label; returned sorted.  Ties in rank are broken by
    ``torch.argsort``'s default (unstable) order, as torchdistill and the authors' code do."""
    label_score = scores.gather(1, labels.unsqueeze(1))
    ranks = (scores > label_score).sum(1)
    num_wrong = int((ranks > 0).sum())
    num_kept = scores.shape[0] - num_wrong + int(num_wrong * keep_ratio)
    return torch.argsort(ranks)[:num_kept].sort().values


@register_loss(term="sub")
class AuxSSKDLoss(nn.Module):
    """SSKD's first stage (Xu, Liu, Li, Loy: "Knowledge Distillation Meets Self-Supervision", ECCV 2020): the
    teacher's self-supervision head learns to tell which original each rotated view comes from.

    ``L = CE(S, j(i))`` with ``S_ij = cos(phi(x~_i), phi(x_j))`` over rotated views ``x~_i`` and originals
    ``x_j`` of the batch, ``phi`` the ``ss_module`` output and ``j(i)`` the original of view ``i``.
    A sub term reading the teacher's ``io_dict[module_path][module_io]``.
    """

    def __init__(self, module_path: str = "ss_module", module_io: str = "output", reduction: str = "mean"):
        super().__init__()
        self.module_path = module_path
        self.module_io = module_io
        self.cross_entropy = nn.CrossEntropyLoss(reduction=reduction)

    def forward(self, student_io_dict: dict, teacher_io_dict: dict, targets=None):
        embeddings = select_features(teacher_io_dict, self.module_path, self.module_io, "teacher", "AuxSSKDLoss")
        normal, aug = split_views(embeddings.shape[0], "AuxSSKDLoss")
        similarities = rotation_similarities(embeddings, normal, aug)
        return self.cross_entropy(similarities, own_image_index(int(normal.sum()), embeddings.device))


@register_loss(term="sub")
class SSKDLoss(nn.Module):
    """SSKD's second stage (Xu, Liu, Li, Loy: "Knowledge Distillation Meets Self-Supervision", ECCV 2020).

    ``L = w_1 CE(z_s, y) + w_2 T_kl^2 KL(p_t^{T_kl} || p_s^{T_kl})``  (originals)
    ``  + w_3 T_ss^2 KL(softmax(S_t / T_ss) || softmax(S_s / T_ss))[R_ss]``  (rotation similarities)
    ``  + w_4 T_tf^2 KL(p_t^{T_tf} || p_s^{T_tf})[R_tf]``  (rotated views' class predictions)

    where ``S`` are the cosine similarities of ``ss_module`` embeddings between rotated views and originals
    (teacher's detached), and ``R`` keeps the rows where the teacher ranks the right answer first plus the
    ``ss_ratio`` / ``tf_ratio`` share of the others with the best rank (the paper's error-level ranking).
    ``loss_weights = [w_1 .. w_4]`` (default all 1); the KL terms use ``reduction`` (CE: ``'mean'`` for
    ``'batchmean'``).  A sub term: logits from ``<side>_linear_module_path`` (``model.fc``), embeddings from
    ``<side>_ss_module_path`` (``ss_module``).
    """

    def __init__(self, student_linear_module_path: str, teacher_linear_module_path: str,
                 student_ss_module_path: str, teacher_ss_module_path: str, kl_temp: float, ss_temp: float,
                 tf_temp: float, ss_ratio: float, tf_ratio: float, student_linear_module_io: str = "output",
                 teacher_linear_module_io: str = "output", student_ss_module_io: str = "output",
                 teacher_ss_module_io: str = "output", loss_weights=None, reduction: str = "batchmean"):
        super().__init__()
        self.loss_weights = [1.0, 1.0, 1.0, 1.0] if loss_weights is None else [float(w) for w in loss_weights]
        if len(self.loss_weights) != 4:
            raise ConfigError(f"SSKDLoss: loss_weights lists the weights of [CE, KL, self-supervision KL, "
                              f"transform KL], 4 numbers; found {loss_weights!r}.", key_path="params.loss_weights")
        self.kl_temp, self.ss_temp, self.tf_temp = float(kl_temp), float(ss_temp), float(tf_temp)
        self.ss_ratio, self.tf_ratio = float(ss_ratio), float(tf_ratio)
        self.reduction = reduction
        self.cross_entropy = nn.CrossEntropyLoss(reduction="mean" if reduction == "batchmean" else reduction)
        self.paths = {"student_linear": (student_linear_module_path, student_linear_module_io),
                      "teacher_linear": (teacher_linear_module_path, teacher_linear_module_io),
                      "student_ss": (student_ss_module_path, student_ss_module_io),
                      "teacher_ss": (teacher_ss_module_path, teacher_ss_module_io)}

    def read(self, name: str, student_io: dict, teacher_io: dict):
        side = name.split("_")[0]
        path, io = self.paths[name]
        return select_features(student_io if side == "student" else teacher_io, path, io, side, "SSKDLoss")

    def soft_kl(self, student, teacher_probs, temperature):
        """``T^2 KL(teacher_probs || softmax(student / T))``."""
        log_probs = torch.log_softmax(student / temperature, dim=1)
        return temperature ** 2 * nn.functional.kl_div(log_probs, teacher_probs, reduction=self.reduction)

    def forward(self, student_io_dict: dict, teacher_io_dict: dict, targets):
        z_s = self.read("student_linear", student_io_dict, teacher_io_dict)
        z_t = self.read("teacher_linear", student_io_dict, teacher_io_dict)
        normal, aug = split_views(z_s.shape[0], "SSKDLoss")
        ce = self.cross_entropy(z_s[normal], targets)
        kl = self.kl_temp ** 2 * soft_kl_divergence(z_s[normal], z_t[normal], self.kl_temp, self.reduction)

        aug_knowledge = torch.softmax(z_t[aug] / self.tf_temp, dim=1)
        rows_tf = confident_rows(aug_knowledge, targets.repeat_interleave(3).to(z_s.device), self.tf_ratio)

        s_sim = rotation_similarities(self.read("student_ss", student_io_dict, teacher_io_dict), normal, aug)
        t_sim = rotation_similarities(self.read("teacher_ss", student_io_dict, teacher_io_dict), normal, aug).detach()
        rows_ss = confident_rows(t_sim, own_image_index(int(normal.sum()), z_s.device), self.ss_ratio)

        ss = self.soft_kl(s_sim[rows_ss], torch.softmax(t_sim[rows_ss] / self.ss_temp, dim=1), self.ss_temp)
        tf = self.soft_kl(z_s[aug][rows_tf], aug_knowledge[rows_tf], self.tf_temp)
        terms = (ce, kl, ss, tf)
        return sum(w * t for w, t in zip(self.loss_weights, terms))
