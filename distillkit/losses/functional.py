"""Pieces several loss families share, written once: feature normalisation, attention maps,
pairwise distances and similarity matrices.  Pure functions on tensors, no registration."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ConfigError, ShapeMismatchError
from .features import select_features


def flatten_samples(x: torch.Tensor) -> torch.Tensor:
    """``(N, ...) -> (N, D)``: one row per sample."""
    return x.reshape(x.shape[0], -1)


def l2_normalize(x: torch.Tensor, dim: int = 1, eps: float = 1e-12) -> torch.Tensor:
    """``x / max(||x||_2, eps)`` along ``dim`` (``F.normalize``)."""
    return F.normalize(x, p=2, dim=dim, eps=eps)


# --- feature-map families (AT, FSP, DAB, ...): reading pair configs, attention maps, FSP matrices ---

def read_io(io_dict: dict, spec: dict, side: str, reader: str):
    """The tensor a ``{path, io}`` spec names in an io_dict (``io`` defaults to ``'output'``)."""
    if not isinstance(spec, dict) or "path" not in spec:
        raise ConfigError(f"{reader}: the {side} entry must be {{io: 'output' | 'input', path: MODULE_PATH}}, "
                          f"found {spec!r}.")
    return select_features(io_dict, spec["path"], spec.get("io", "output"), side, reader)


def pair_weight(pair: dict, reader: str) -> float:
    """A feature pair's weight: ``weight`` (torchdistill 1.x) or ``factor`` (0.x); 1 when neither is given."""
    if "weight" in pair and "factor" in pair and pair["weight"] != pair["factor"]:
        raise ConfigError(f"{reader}: a pair gives both weight={pair['weight']!r} (torchdistill 1.x) and "
                          f"factor={pair['factor']!r} (0.x); keep one.")
    return pair.get("weight", pair.get("factor", 1))


def iter_feature_pairs(pairs: dict, student_io: dict, teacher_io: dict, reader: str,
                       keys=("student", "teacher")):
    """For each pair: ``(where, weight, tensors)``, the tensors read for ``keys`` in order (``student*`` keys
    from the student's io_dict, ``teacher*`` keys from the teacher's); ``where`` names the pair for errors."""
    for name, pair in pairs.items():
        where = f"{reader} pair {name!r}"
        tensors = [read_io(student_io, pair[key], "student", where) if key.startswith("student")
                   else read_io(teacher_io, pair[key], "teacher", where) for key in keys]
        yield where, pair_weight(pair, where), tensors


def attention_map(feature_map: torch.Tensor, channel_reduction: str = "mean") -> torch.Tensor:
    """Spatial attention of Zagoruyko & Komodakis (ICLR 2017): ``Q = vec(F(A)) / ||vec(F(A))||_2`` with
    ``F(A) = mean_c A_c^2`` (the authors' code) or ``sum_c A_c^2`` (the paper's Eq. 2); ``(N, C, ...) -> (N, HW)``."""
    squared = feature_map.pow(2)
    pooled = squared.mean(1) if channel_reduction == "mean" else squared.sum(1)
    return l2_normalize(pooled.flatten(1), dim=1)


def fsp_matrix(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Flow of solution procedure (Yim et al., CVPR 2017): ``G_ij = sum_s F1_i(s) F2_j(s) / (h w)``, ``(N, C1, C2)``.

    A map larger than the other is first max-pooled (adaptively) to the smaller height and width."""
    height, width = min(first.shape[2], second.shape[2]), min(first.shape[3], second.shape[3])
    if tuple(first.shape[2:4]) != (height, width):
        first = F.adaptive_max_pool2d(first, (height, width))
    if tuple(second.shape[2:4]) != (height, width):
        second = F.adaptive_max_pool2d(second, (height, width))
    first, second = first.flatten(2), second.flatten(2)
    return torch.matmul(first, second.transpose(1, 2)) / first.shape[2]


def check_feature_pairs(pairs, name: str, param: str, keys) -> dict:
    """``pairs`` is a non-empty ``{pair name: {key: {io, path}, ..., weight}}`` with every one of ``keys``."""
    if not isinstance(pairs, dict) or not pairs:
        raise ConfigError(f"{name} needs {param}: {{pair name: {{{', '.join(keys)}: {{io, path}}, weight}}}}, "
                          f"found {pairs!r}.", key_path=f"params.{param}")
    for pair_name, pair in pairs.items():
        missing = [k for k in keys if not isinstance(pair, dict) or k not in pair]
        if missing:
            raise ConfigError(f"{name} pair {pair_name!r} in {param} lacks {', '.join(missing)}; each pair "
                              f"needs {', '.join(keys)} (each {{io, path}}) and optionally weight.",
                              key_path=f"params.{param}.{pair_name}")
        pair_weight(pair, f"{name} pair {pair_name!r}")
    return pairs


# --- relational / embedding families (RKD, PKT, SPKD, CCKD, ICKD, CRD): distances, angles, similarities ---

def pairwise_distances(e: torch.Tensor, squared: bool = False, eps: float = 1e-12) -> torch.Tensor:
    """``d_ij = ||e_i - e_j||_2`` between the rows of ``e`` ``(N, D)``, via ``|e_i|^2 + |e_j|^2 - 2 e_i.e_j``
    clamped at ``eps`` (before the square root), with an exact zero diagonal; ``(N, N)``."""
    squares = e.pow(2).sum(dim=1)
    distances = (squares.unsqueeze(1) + squares.unsqueeze(0) - 2 * (e @ e.t())).clamp(min=eps)
    if not squared:
        distances = distances.sqrt()
    off_diagonal = 1 - torch.eye(e.shape[0], dtype=distances.dtype, device=distances.device)
    return distances * off_diagonal


def pairwise_angles(e: torch.Tensor) -> torch.Tensor:
    """``a_ijk = cos angle(e_j - e_i, e_k - e_i)`` for the rows of ``e`` ``(N, D)``; ``(N, N, N)`` (RKD's angle)."""
    directions = l2_normalize(e.unsqueeze(0) - e.unsqueeze(1), dim=2)  # [i, j] = unit(e_j - e_i)
    return torch.bmm(directions, directions.transpose(1, 2))


def cosine_gram(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``K_ij = <x_i, x_j> / ((|x_i| + eps)(|x_j| + eps))`` for the rows of ``x`` ``(N, D)``; rows that come out
    NaN are zeroed (PKT's normalisation, ``eps`` added to the norm rather than clamped)."""
    unit = x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)
    unit = torch.where(torch.isnan(unit), torch.zeros_like(unit), unit)
    return unit @ unit.t()


def normalized_gram(x: torch.Tensor, p: float = 2) -> torch.Tensor:
    """``G = x x^T`` over the last dimension, each row of ``G`` divided by its L_p norm; ``(..., N, D) -> (..., N, N)``.
    Samples ``(B, D)`` give SPKD's batch similarity, channels ``(B, C, HW)`` ICKD's channel correlation."""
    return F.normalize(x @ x.transpose(-1, -2), p=p, dim=-1)


def taylor_gaussian_kernel(x: torch.Tensor, gamma: float, max_p: int) -> torch.Tensor:
    """``k(x_i, x_j) = exp(-2 gamma) sum_{p=0}^{P} (2 gamma)^p / p! (x_i . x_j)^p``: the P-th order Taylor
    expansion of the Gaussian RBF ``exp(-gamma |x_i - x_j|^2)`` for unit rows (CCKD); ``(N, D) -> (N, N)``."""
    inner = x @ x.t()
    kernel = torch.ones_like(inner)
    for p in range(1, max_p + 1):
        kernel = kernel + ((2 * gamma) ** p / math.factorial(p)) * inner.pow(p)
    return kernel * math.exp(-2 * gamma)


def power_normalize(z: torch.Tensor, power: int = 2) -> torch.Tensor:
    """``z / (sum_d z_d^power)^(1 / power)`` along dim 1 (CRD's ``Normalizer4CRD``; the L2 norm for power 2)."""
    return z / z.pow(power).sum(1, keepdim=True).pow(1.0 / power)


def check_reduction(reduction, name: str, allowed=("mean", "sum")) -> str:
    """``reduction`` is one of ``allowed``; anything else is a config error naming the loss."""
    if reduction not in allowed:
        raise ConfigError(f"{name} reduction must be one of {', '.join(map(repr, allowed))}, found {reduction!r}.",
                          key_path="params.reduction")
    return reduction


# --- logit families (DIST, logit standardization, SRD, SKD, SSKD, DKD) ---

def soft_kl_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0,
                       reduction: str = "batchmean") -> torch.Tensor:
    """``KL(softmax(z_t / T) || softmax(z_s / T))`` over dim 1, reduced as ``F.kl_div`` does; no ``T^2`` factor."""
    return F.kl_div(torch.log_softmax(student_logits / temperature, dim=1),
                    torch.softmax(teacher_logits / temperature, dim=1), reduction=reduction)


def pearson_correlation(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Row-wise Pearson correlation, ``(N, D), (N, D) -> (N,)``: cosine similarity of the mean-centred rows."""
    return F.cosine_similarity(x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True), dim=1, eps=eps)


def standardize_logits(logits: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Z-score over the last dim: ``(z - mean(z)) / (eps + std(z))``, ``std`` unbiased (Sun et al., CVPR 2024)."""
    return (logits - logits.mean(-1, keepdim=True)) / (eps + logits.std(-1, keepdim=True))


def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``S_ij = cos(a_i, b_j)``: ``(N, D), (M, D) -> (N, M)``."""
    return F.cosine_similarity(a.unsqueeze(2), b.t().unsqueeze(0), dim=1, eps=eps)


def read_matching_pair(student_io: dict, teacher_io: dict, student_path: str, student_io_name: str,
                       teacher_path: str, teacher_io_name: str, reader: str, what: str = "logits"):
    """The student's and the teacher's tensors at the given paths, which must have the same shape."""
    student = select_features(student_io, student_path, student_io_name, "student", reader)
    teacher = select_features(teacher_io, teacher_path, teacher_io_name, "teacher", reader)
    if student.shape != teacher.shape:
        raise ShapeMismatchError(
            f"{reader} compares the student's {what} ({student_io_name} of {student_path!r}, shape "
            f"{tuple(student.shape)}) with the teacher's ({teacher_io_name} of {teacher_path!r}, shape "
            f"{tuple(teacher.shape)}); they must have the same shape. Hook layers that match (e.g. both models' "
            f"final classifier, with the same num_classes), or add a special module that projects one onto the other.")
    return student, teacher
