"""Several teachers, deep mutual learning and born-again generations: numerics against the formulas by hand,
config errors, and what `distillkit check` shows."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from distillkit.errors import ConfigError
from distillkit.losses import build_criterion
from distillkit.losses.multi_teacher import MultiTeacherKDLoss
from distillkit.multi.groups import TeacherOutputs
from distillkit.multi.mutual import MutualLoss, OptimizerGroup

torch.manual_seed(0)
STUDENT = torch.randn(3, 4)
TEACHERS = TeacherOutputs(a=torch.randn(3, 4), b=torch.randn(3, 4) * 2)
TARGETS = torch.tensor([0, 2, 3])


def softmax(row, t=1.0):
    exps = [math.exp(v / t) for v in row]
    return [e / sum(exps) for e in exps]


def kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def by_hand(weights_of_sample, t, alpha, beta):
    """alpha * mean CE + beta * T^2 * (1/B) sum_i sum_k w_ik KL(p_ik || q_i), in plain Python."""
    total_kl, total_ce = 0.0, 0.0
    for i in range(3):
        q = softmax(STUDENT[i].tolist(), t)
        for name, w in weights_of_sample(i).items():
            total_kl += w * kl(softmax(TEACHERS[name][i].tolist(), t), q)
        total_ce += -math.log(softmax(STUDENT[i].tolist())[TARGETS[i]])
    return alpha * total_ce / 3 + beta * t * t * total_kl / 3


def test_mean_and_weighted_ensembles_match_the_formula():
    mean = MultiTeacherKDLoss(temperature=2.0, alpha=0.3)(STUDENT, TEACHERS, TARGETS)
    assert mean.item() == pytest.approx(by_hand(lambda i: {"a": 0.5, "b": 0.5}, 2.0, 0.3, 0.7), rel=1e-5)
    weighted = MultiTeacherKDLoss(temperature=3.0, alpha=0.0, beta=1.0, ensemble="weighted",
                                  weights={"a": 1.0, "b": 3.0})(STUDENT, TEACHERS, TARGETS)
    assert weighted.item() == pytest.approx(by_hand(lambda i: {"a": 0.25, "b": 0.75}, 3.0, 0.0, 1.0), rel=1e-5)


def test_confidence_ensemble_is_ca_mkd():
    def camkd(i):  # w_k = (1 - softmax_k(CE_k)) / (K - 1), CE_k = -log p_k(y_i) at T = 1
        ce = {n: -math.log(softmax(TEACHERS[n][i].tolist())[TARGETS[i]]) for n in TEACHERS}
        z = sum(math.exp(v) for v in ce.values())
        return {n: (1 - math.exp(v) / z) / (len(ce) - 1) for n, v in ce.items()}

    loss = MultiTeacherKDLoss(temperature=4.0, alpha=0.5, ensemble="confidence")(STUDENT, TEACHERS, TARGETS)
    assert loss.item() == pytest.approx(by_hand(camkd, 4.0, 0.5, 0.5), rel=1e-5)
    # the teacher with the lower cross-entropy on a sample weighs more on it
    weights = MultiTeacherKDLoss(ensemble="confidence").teacher_weights(TEACHERS, TARGETS)
    ce = torch.stack([F.cross_entropy(TEACHERS[n], TARGETS, reduction="none") for n in "ab"])
    assert torch.equal(weights.argmax(0), ce.argmin(0))


def kd_term(teacher=None):
    term = {"criterion": {"type": "KDLoss", "params": {"temperature": 2.0, "alpha": 0.5}}, "factor": 1.0}
    return {**term, "teacher": teacher} if teacher else term


def test_a_term_reads_the_teacher_it_names():
    block = {"type": "GeneralizedCustomLoss", "org_term": kd_term("b"),
             "sub_terms": {"fm": {"criterion": {"type": "MSELoss", "params": {
                 "input": {"is_from_teacher": False, "module_path": "fc", "io": "output"},
                 "target": {"is_from_teacher": True, "module_path": "fc", "io": "output"}}},
                 "factor": 2.0, "teacher": "a"}}}
    criterion = build_criterion(block, teachers=["a", "b"])
    feature_s, feature_a, feature_b = torch.randn(3, 5), torch.randn(3, 5), torch.randn(3, 5)
    total, terms = criterion(STUDENT, TEACHERS, {"fc": {"output": feature_s}},
                             {"a:fc": {"output": feature_a}, "b:fc": {"output": feature_b}}, TARGETS)
    t = 2.0
    expected_kd = 0.5 * F.cross_entropy(STUDENT, TARGETS) + 0.5 * t * t * F.kl_div(
        F.log_softmax(STUDENT / t, 1), F.softmax(TEACHERS["b"] / t, 1), reduction="batchmean")
    torch.testing.assert_close(terms["org"], expected_kd)
    torch.testing.assert_close(terms["fm"], 2.0 * ((feature_s - feature_a) ** 2).mean())


def test_teacher_errors_name_the_key():
    block = {"type": "GeneralizedCustomLoss", "org_term": kd_term("resnet2O")}
    with pytest.raises(ConfigError) as error:
        build_criterion(block, teachers=["resnet20", "resnet8"])
    assert "train.criterion.org_term.teacher" in str(error.value) and "resnet20" in str(error.value)
    with pytest.raises(ConfigError, match="does not say which one"):
        build_criterion({"type": "GeneralizedCustomLoss", "org_term": kd_term()}, teachers=["resnet20", "resnet8"])
    with pytest.raises(ConfigError, match="no models.teachers"):
        build_criterion(block)  # one models.teacher_model: no teacher to choose
    # cross-entropy reads no teacher: fine without a name, and the single-teacher form is unchanged
    build_criterion({"type": "GeneralizedCustomLoss", "org_term": {"criterion": {"type": "CrossEntropyLoss"},
                                                                   "factor": 1.0}}, teachers=["x", "y"])


def test_one_dml_step_matches_the_formula_by_hand():
    """L_k = CE(p_k, y) + KL(p_l || p_k) with p_l detached; one SGD step of each student on its own L_k."""
    torch.manual_seed(1)
    a, b = nn.Linear(6, 4), nn.Linear(6, 4)
    x, y = torch.randn(5, 6), torch.tensor([0, 1, 2, 3, 1])
    expected = {}
    for model, other in ((a, b), (b, a)):
        w, bias = model.weight.detach().clone().requires_grad_(), model.bias.detach().clone().requires_grad_()
        z = x @ w.T + bias
        p_other = torch.softmax(other(x).detach(), 1)
        log_p = torch.log_softmax(z, 1)
        loss = -log_p[torch.arange(5), y].mean() + (p_other * (p_other.log() - log_p)).sum(1).mean()
        gw, gb = torch.autograd.grad(loss, (w, bias))
        expected[id(model)] = (w.detach() - 0.1 * gw, bias.detach() - 0.1 * gb)
    criterion = MutualLoss({"type": "GeneralizedCustomLoss", "org_term": {"criterion": {
        "type": "KDLoss", "params": {"temperature": 1.0, "alpha": 1.0, "beta": 1.0}}, "factor": 1.0}},
        "train.criterion", ["a", "b"])
    optimizer = OptimizerGroup({"a": torch.optim.SGD(a.parameters(), lr=0.1), "b": torch.optim.SGD(b.parameters(),
                                                                                                   lr=0.1)})
    total, terms = criterion({"a": a(x), "b": b(x)}, None, {}, {}, y)
    assert set(terms) == {"a/org", "b/org"}
    total.backward()
    optimizer.step()
    for model in (a, b):
        torch.testing.assert_close(model.weight.detach(), expected[id(model)][0])
        torch.testing.assert_close(model.bias.detach(), expected[id(model)][1])
