"""KDLoss and GeneralizedCustomLoss against values worked out by hand (plain Python math)."""
import math

import pytest
import torch

from distillkit.errors import ConfigError
from distillkit.losses import GeneralizedCustomLoss, KDLoss

S = [[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]]
T = [[3.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
Y = [2, 0]


def softmax(row, temperature=1.0):
    exps = [math.exp(v / temperature) for v in row]
    return [e / sum(exps) for e in exps]


def kl_per_sample(student_row, teacher_row, temperature):
    p_t, p_s = softmax(teacher_row, temperature), softmax(student_row, temperature)
    return sum(pt * (math.log(pt) - math.log(ps)) for pt, ps in zip(p_t, p_s))


def cross_entropy(row, label):
    return -math.log(softmax(row)[label])


@pytest.mark.parametrize("temperature, alpha, beta", [(1.0, 0.5, None), (4.0, 0.1, 0.0), (2.0, 0.3, 0.9),
                                                      (3.0, 0.0, None)])
def test_kd_loss_matches_hand_formula(temperature, alpha, beta):
    loss = KDLoss(temperature=temperature, alpha=alpha, beta=beta)(torch.tensor(S), torch.tensor(T), torch.tensor(Y))
    b = 1 - alpha if beta is None else beta
    kl = sum(kl_per_sample(s, t, temperature) for s, t in zip(S, T)) / len(S)  # batchmean
    ce = sum(cross_entropy(s, y) for s, y in zip(S, Y)) / len(S)
    assert loss.item() == pytest.approx(alpha * ce + b * temperature ** 2 * kl, rel=1e-5)


def test_kd_sum_reduction_and_no_targets():
    temperature = 2.0
    loss = KDLoss(temperature=temperature, alpha=0.25, reduction="sum")(torch.tensor(S), torch.tensor(T),
                                                                        torch.tensor(Y))
    kl_sum = sum(sum(pt * (math.log(pt) - math.log(ps)) for pt, ps in zip(softmax(t, 2.0), softmax(s, 2.0)))
                 for s, t in zip(S, T))
    ce_sum = sum(cross_entropy(s, y) for s, y in zip(S, Y))
    assert loss.item() == pytest.approx(0.25 * ce_sum + 0.75 * 4.0 * kl_sum, rel=1e-5)
    soft_only = KDLoss(temperature=1.0, alpha=0.5)(torch.tensor(S), torch.tensor(T), None)
    kl = sum(kl_per_sample(s, t, 1.0) for s, t in zip(S, T)) / 2
    assert soft_only.item() == pytest.approx(0.5 * kl, rel=1e-5)


def test_kd_label_smoothing_goes_to_cross_entropy():
    eps = 0.1
    loss = KDLoss(temperature=1.0, alpha=1.0, beta=0.0, label_smoothing=eps)(torch.tensor(S), torch.tensor(T),
                                                                           torch.tensor(Y))
    expected = 0.0
    for row, label in zip(S, Y):
        logp = [math.log(p) for p in softmax(row)]
        expected += -(1 - eps) * logp[label] - eps / 3 * sum(logp)
    assert loss.item() == pytest.approx(expected / 2, rel=1e-5)


def test_kd_without_teacher_explains():
    with pytest.raises(ConfigError, match="teacher"):
        KDLoss(temperature=1.0, alpha=0.5)(torch.tensor(S), None, torch.tensor(Y))


def test_generalized_custom_loss_sums_weighted_terms_and_reports_each():
    class Constant(torch.nn.Module):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def forward(self, a, b, c):
            return torch.tensor(self.value)

    crit = GeneralizedCustomLoss((Constant(2.0), 0.5), {"a": (Constant(3.0), 2.0), "off": (Constant(9.0), 0.0)})
    total, terms = crit(None, None, {}, {}, None)
    assert total.item() == pytest.approx(0.5 * 2.0 + 2.0 * 3.0)
    assert set(terms) == {"org", "a"} and terms["a"].item() == pytest.approx(6.0)
