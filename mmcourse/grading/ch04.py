"""Hidden tests of chapter 4's exercises (``solutions/04_training_deep_networks.ipynb``): batch norm's backward
pass, one RMSprop step, a find-the-bug evaluation function (``model.eval()`` and ``torch.no_grad()``), and
diagnosing five broken training runs from the chapter's debugging recipes.

Observations that must be made around the learner's code (a model's mode and running statistics after an
evaluation) come from module-level *probe* functions: they build the inputs, call the answer and report what
they saw; the checks compute every expected value themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.grading.ch01 import assert_tensor_close
from mmcourse.grading.choices import check_choices
from mmcourse.grading.registry import register

DEFECTS = ("ok", "init", "lr", "labels", "loss")
# The five runs of the exercise (run number -> its one defect, each defect once); ``mystery_run`` builds them
# and the learner finds the defects from the evidence of the chapter's debugging recipes.
DIAGNOSES = {1: "labels", 2: "ok", 3: "loss", 4: "lr", 5: "init"}


@dataclass
class MysteryRun:
    """A training set-up of the exercise: a digits classifier, its data and optimiser settings.

    ``loss_fn(model, x, y)`` is the loss the run trains with; ``optimizer(params)`` its optimiser.
    """

    model: nn.Module
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    optimizer: Callable[[Any], torch.optim.Optimizer]
    loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def mystery_run(number: int, seed: int = 0) -> MysteryRun:
    """Run ``number`` (1–5) of exercise 04.diagnose, on chapter 01's digits split (no peeking at the defect)."""
    from mmcourse.data.digits import digits_split

    if number not in DIAGNOSES:
        raise ValueError(f"run number must be one of {sorted(DIAGNOSES)}, got {number}")
    defect = DIAGNOSES[number]
    data = digits_split(seed)
    (x, y), (xv, yv) = data["train"], data["val"]
    torch.manual_seed(seed + number)
    model: nn.Module = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    if defect == "labels":
        y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed + 17))]
    if defect == "init":
        with torch.no_grad():
            model[-1].weight.mul_(30.0)
    if defect == "loss":
        model = nn.Sequential(model, nn.Softmax(dim=1))
    lr = 2.0 if defect == "lr" else 0.05
    return MysteryRun(model, x, y, xv, yv, lambda ps: torch.optim.SGD(ps, lr=lr, momentum=0.9),
                      lambda m, xb, yb: F.cross_entropy(m(xb), yb))


def _probe(fn: Any, probe: Callable[..., Any], *args: Any) -> Any:
    """Run ``probe(fn, *args)`` beside the learner's code (``fn.probe`` when the grader provides it)."""
    return fn.probe(probe, *args) if hasattr(fn, "probe") else probe(fn, *args)


@register("04.batchnorm_backward", points=2, timeout=30,
          forbid=("backward", "grad", "batch_norm", "native_batch_norm_backward"),
          forbid_note="derive the gradients by hand with tensor operations, not autograd or F.batch_norm",
          hint="with x̂ = (x - μ)/σ: dβ = Σ g, dγ = Σ g·x̂, dx = γ/σ · (g - mean(g) - x̂ · mean(g·x̂)), "
               "means over the batch")
def _batchnorm_backward(fn: Any) -> None:
    g = torch.Generator().manual_seed(4)
    for n, c, eps in [(8, 3, 1e-5), (5, 7, 1e-3), (64, 1, 1e-5), (2, 4, 1e-5)]:
        x = torch.randn(n, c, generator=g, dtype=torch.float64) * 3 + 1
        gamma = torch.rand(c, generator=g, dtype=torch.float64) + 0.5
        beta = torch.randn(c, generator=g, dtype=torch.float64)
        grad_out = torch.randn(n, c, generator=g, dtype=torch.float64)
        xr, gr, br = (t.clone().requires_grad_() for t in (x, gamma, beta))
        (F.batch_norm(xr, None, None, gr, br, training=True, eps=eps) * grad_out).sum().backward()
        with torch.no_grad():  # the backward pass by hand needs no autograd
            got = fn(x.clone(), gamma.clone(), grad_out.clone(), eps=eps)
        what = f"batchnorm_backward(x [{n}, {c}], eps={eps})"
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise AssertionError(f"{what}: return the tuple (dx, dgamma, dbeta), got {type(got).__name__}")
        dx, dgamma, dbeta = got
        assert_tensor_close(dbeta, br.grad, f"{what}: dbeta", atol=1e-8, rtol=1e-6)
        assert_tensor_close(dgamma, gr.grad, f"{what}: dgamma", atol=1e-8, rtol=1e-6)
        if isinstance(dx, torch.Tensor) and dx.shape == xr.grad.shape:
            naive = grad_out * gamma / torch.sqrt(x.var(0, unbiased=False) + eps)
            if torch.allclose(dx, naive, atol=1e-8):
                raise AssertionError(f"{what}: dx is only γ·g/σ — the batch mean and variance depend on x too, "
                                     "which adds the terms -mean(g) and -x̂·mean(g·x̂)")
        assert_tensor_close(dx, xr.grad, f"{what}: dx", atol=1e-8, rtol=1e-6)


@register("04.rmsprop", points=2, timeout=30,
          hint="square_avg = alpha·square_avg + (1 - alpha)·g² (after g += weight_decay·p), "
               "then p - lr·g / (sqrt(square_avg) + eps)")
def _rmsprop(fn: Any) -> None:
    g = torch.Generator().manual_seed(5)
    for lr, alpha, eps, wd in [(0.01, 0.99, 1e-8, 0.0), (0.05, 0.9, 1e-3, 0.0), (0.01, 0.99, 1e-8, 0.1)]:
        a = torch.randn(6, 6, generator=g, dtype=torch.float64)
        hess, target = a @ a.T / 6 + torch.eye(6, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
        ref = nn.Parameter(torch.randn(6, 3, generator=g, dtype=torch.float64))
        p, square_avg = ref.detach().clone(), torch.zeros(6, 3, dtype=torch.float64)
        opt = torch.optim.RMSprop([ref], lr=lr, alpha=alpha, eps=eps, weight_decay=wd)
        for step in range(1, 9):  # a quadratic loss: the gradient depends on where p is
            ref.grad = hess @ ref.detach() - target
            opt.step()
            grad = hess @ p - target
            got = fn(p.clone(), grad.clone(), square_avg.clone(), lr=lr, alpha=alpha, eps=eps, weight_decay=wd)
            what = f"rmsprop_step (lr={lr}, alpha={alpha}, eps={eps}, weight_decay={wd}), step {step}"
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise AssertionError(f"{what}: return the tuple (new_p, new_square_avg), got {type(got).__name__}")
            p, square_avg = got
            assert_tensor_close(square_avg, opt.state[ref]["square_avg"], f"{what}: square_avg", atol=1e-10,
                                rtol=1e-7)
            assert_tensor_close(p, ref.detach(), f"{what}: the parameter", atol=1e-10, rtol=1e-7)


def _bn_dropout_net(seed: int) -> nn.Module:
    """A small trained-looking classifier with batch norm and dropout (non-trivial running statistics)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    with torch.no_grad():
        net[1].running_mean.copy_(torch.randn(16) * 0.5)
        net[1].running_var.copy_(torch.rand(16) + 0.5)
    return net


def _eval_data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(37, 6, generator=g) * 2 + 1  # 37: a last batch of one sample for some batch sizes
    return x, torch.randint(0, 3, (37,), generator=g)


def probe_eval_accuracy(fn: Any, seed: int, batch_size: int, start_in_train: bool) -> dict[str, Any]:
    """Call the learner's accuracy on a fresh net; report the result, the net's mode and statistics after, and
    whether autograd was recording during the forward passes."""
    net = _bn_dropout_net(seed)
    net.train(start_in_train)
    x, y = _eval_data(seed)
    before = [t.clone() for t in (net[1].running_mean, net[1].running_var)]
    grad_mode: list[bool] = []
    net.register_forward_hook(lambda _m, _i, _o: grad_mode.append(torch.is_grad_enabled()))
    seen: dict[str, Any] = {}
    try:
        seen["acc"] = fn(net, x, y, batch_size=batch_size)
    except Exception as e:  # noqa: BLE001 - reported to the check
        seen["error"] = f"{type(e).__name__}: {e}"
    seen["training_after"] = net.training
    seen["stats_changed"] = not (torch.equal(before[0], net[1].running_mean)
                                 and torch.equal(before[1], net[1].running_var))
    seen["grad_enabled"] = any(grad_mode)
    seen["forwards"] = len(grad_mode)
    return seen


@register("04.eval_accuracy", points=2, timeout=30, kind="find-the-bug",
          hint="remember the mode (model.training), switch to model.eval(), evaluate under torch.no_grad(), "
               "then model.train(previous mode)")
def _eval_accuracy(fn: Any) -> None:
    for seed, batch_size, start_in_train in [(0, 12, True), (1, 36, True), (2, 5, False), (3, 64, True)]:
        seen = _probe(fn, probe_eval_accuracy, seed, batch_size, start_in_train)
        mode = "train" if start_in_train else "eval"
        what = f"accuracy(model, x [37, 6], y, batch_size={batch_size}) on a model in {mode} mode"
        if "error" in seen:
            raise AssertionError(f"{what} raised {seen['error']} (batch norm in training mode cannot normalise a "
                                 "batch of one sample)")
        net = _bn_dropout_net(seed).eval()
        x, y = _eval_data(seed)
        with torch.no_grad():
            want = (net(x).argmax(1) == y).float().mean().item()
        acc = seen["acc"]
        if isinstance(acc, torch.Tensor) and acc.numel() == 1:
            acc = acc.item()
        if not isinstance(acc, (float, int)) or isinstance(acc, bool):
            raise AssertionError(f"{what}: return the accuracy as a float, got {type(acc).__name__}")
        if not 0.0 <= acc <= 1.0:
            raise AssertionError(f"{what} returned {acc}: an accuracy is a fraction in [0, 1]")
        assert not seen["stats_changed"], (f"{what}: the batch-norm running statistics changed — the model was "
                                           "evaluated in training mode")
        assert abs(acc - want) < 1e-6, (f"{what} returned {acc:.4f}, but the model in evaluation mode gets "
                                        f"{want:.4f} (dropout and batch statistics must be off)")
        assert seen["training_after"] == start_in_train, (
            f"{what}: afterwards the model is in {'train' if seen['training_after'] else 'eval'} mode; leave it in "
            "the mode you found it in")
        assert not seen["grad_enabled"], (f"{what}: autograd recorded the forward passes; evaluate under "
                                          "torch.no_grad() (no graph, less memory)")


@register("04.diagnose", points=2, timeout=10, kind="experiment",
          hint="for each recipe of the chapter's section 7, ask which defect it detects and which run fails it; "
               "a run can fail several recipes for one cause")
def _diagnose(fn: Any) -> None:
    check_choices(fn(), answer=DIAGNOSES, options=DEFECTS, fn_name="diagnoses", what="{run number: defect}",
                  cases="for the runs", advice="look again at the evidence of each run (every run has exactly one "
                  "defect or none, and each defect occurs once)")
