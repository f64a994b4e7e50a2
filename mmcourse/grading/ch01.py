"""Hidden tests of chapter 1's exercises (``solutions/01_fully_connected.ipynb``): linear forward, the backward
pass of a two-layer MLP with a ReLU and a squared-error loss, Kaiming init, and a find-the-bug: a deep MLP whose
initialisation (std 1/sqrt(width)) shrinks the signal layer after layer, so that it hardly learns.

The forward may not call ``F.linear`` (nor ``nn.Linear``, which calls it), the backward may not use autograd,
and the initialisation is tested for its distribution (a Kolmogorov–Smirnov distance to the normal), not
only its standard deviation: a uniform draw with the right spread fails.

Also holds :func:`assert_tensor_close`, the comparison chapters 2 and 3 reuse: it names the shape or the
position where a learner's tensor differs from the reference, so the message says what to fix.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from mmcourse.grading.probing import run_module
from mmcourse.grading.registry import register


def assert_tensor_close(got: Any, want: torch.Tensor, what: str, *, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Raise ``AssertionError`` with an actionable message unless ``got`` is a tensor close to ``want``."""
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{what}: expected a torch.Tensor, got {type(got).__name__}")
    if tuple(got.shape) != tuple(want.shape):
        raise AssertionError(f"{what}: expected shape {list(want.shape)}, got {list(got.shape)}")
    if not torch.isfinite(got).all() and torch.isfinite(want).all():
        raise AssertionError(f"{what}: your result holds nan/inf where the reference is finite "
                             f"(overflow? see the stability section of the chapter)")
    try:
        torch.testing.assert_close(got.to(want.dtype), want, atol=atol, rtol=rtol)
    except AssertionError as e:
        diff = (got.to(want.dtype) - want).abs()
        where = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0]) if diff.numel() else ()
        raise AssertionError(f"{what}: values differ from the reference; largest difference {float(diff.max()):.3g} "
                             f"at index {list(where)} (got {float(got.flatten()[diff.argmax()]):.5g}, expected "
                             f"{float(want.flatten()[diff.argmax()]):.5g})") from e


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@register("01.linear_forward", points=1, hint="y = x @ W.T + b; W has one row per output neuron", timeout=20,
          forbid=("linear",), forbid_note="write x @ W.T + b with tensor operations (no F.linear, no nn.Linear)")
def _linear_forward(fn: Any) -> None:
    for seed, (lead, n_in, n_out) in enumerate([((4,), 3, 2), ((5,), 7, 1), ((2, 3), 6, 4)]):
        g = _gen(seed)
        x, w, b = torch.randn(*lead, n_in, generator=g), torch.randn(n_out, n_in, generator=g), torch.randn(n_out,
                                                                                                              generator=g)
        assert_tensor_close(fn(x, w, b), F.linear(x, w, b),
                            f"linear_forward(x {list(x.shape)}, W {list(w.shape)}, b {list(b.shape)})")


def _mlp_reference(x, w1, b1, w2, b2, target):
    """Loss and autograd gradients of mean((relu(x W1ᵀ + b1) W2ᵀ + b2 - target)²)."""
    params = [t.clone().requires_grad_() for t in (w1, b1, w2, b2)]
    with torch.enable_grad():
        y = F.linear(torch.relu(F.linear(x, params[0], params[1])), params[2], params[3])
        loss = F.mse_loss(y, target)
        grads = torch.autograd.grad(loss, params)
    return loss.detach(), grads


@register("01.mlp_backward", points=2,
          hint="go backwards one step at a time: dL/dy of the mean over all N·out entries is 2(y - t)/(N·out); a "
          "weight's gradient is (the gradient at the layer's output)ᵀ @ (the layer's input), a bias's sums it over "
          "the batch; the ReLU passes the gradient only where its input z was positive", timeout=20,
          forbid=("backward", "grad"), forbid_note="use the chain rule by hand, not autograd")
def _mlp_backward(fn: Any) -> None:
    names = ("grad_W1", "grad_b1", "grad_W2", "grad_b2")
    for seed, (n, n_in, n_hidden, n_out) in enumerate([(6, 4, 5, 3), (9, 7, 8, 2), (1, 3, 6, 4), (5, 2, 3, 1)]):
        g = _gen(10 + seed)
        x = torch.randn(n, n_in, generator=g, dtype=torch.float64)
        w1 = torch.randn(n_hidden, n_in, generator=g, dtype=torch.float64)
        b1 = torch.randn(n_hidden, generator=g, dtype=torch.float64)
        w2 = torch.randn(n_out, n_hidden, generator=g, dtype=torch.float64)
        b2 = torch.randn(n_out, generator=g, dtype=torch.float64)
        target = torch.randn(n, n_out, generator=g, dtype=torch.float64)
        loss, grads = _mlp_reference(x, w1, b1, w2, b2, target)
        with torch.no_grad():  # the backward pass by hand needs no autograd
            got = fn(x.clone(), w1.clone(), b1.clone(), w2.clone(), b2.clone(), target.clone())
        what = (f"mlp_backward(x [{n}, {n_in}], W1 [{n_hidden}, {n_in}], W2 [{n_out}, {n_hidden}], "
                f"target [{n}, {n_out}])")
        if not (isinstance(got, (tuple, list)) and len(got) == 5):
            raise AssertionError(f"{what} must return the tuple (loss, grad_W1, grad_b1, grad_W2, grad_b2), got "
                                 f"{type(got).__name__}")
        got_loss = got[0].detach() if isinstance(got[0], torch.Tensor) else got[0]
        if isinstance(got_loss, torch.Tensor) and got_loss.numel() == 1:
            got_loss = float(got_loss)
        if not isinstance(got_loss, float):
            raise AssertionError(f"{what}: the loss must be a number (a float or a one-element tensor)")
        for count, wrong in ((n * n_out, "the sum of the squared errors"), (n_out, "their mean over the batch")):
            if count > 1 and math.isclose(got_loss, float(loss) * count, rel_tol=1e-9):
                raise AssertionError(f"{what}: the loss is {wrong}; take their mean over all N·out entries "
                                     "(and the same mean in dL/dy)")
        assert math.isclose(got_loss, float(loss), rel_tol=1e-9), (
            f"{what}: loss {got_loss:.6g}, expected {float(loss):.6g} = mean((y - target)²) over all entries")
        mine = got[1:]
        for name, m, ref in zip(names, mine, grads):
            if not isinstance(m, torch.Tensor) or tuple(m.shape) != tuple(ref.shape):
                assert_tensor_close(m, ref, f"{what}: {name}")  # names the type or the shape
        dw2 = mine[2].to(torch.float64)
        if not torch.allclose(dw2, grads[2], atol=1e-8, rtol=1e-6) and grads[2].abs().max() > 1e-6:
            k = int(grads[2].abs().argmax())
            ratio = float(dw2.flatten()[k] / grads[2].flatten()[k])
            if ratio < 0 and torch.allclose(dw2, ratio * grads[2], atol=1e-8, rtol=1e-6):
                raise AssertionError(f"{what}: grad_W2 points the wrong way ({ratio:.3g} times the right one); "
                                     "dL/dy of mean((y - t)²) is 2(y - t)/(N·out), with y - t, not t - y")
            if abs(ratio) > 1e-3 and torch.allclose(dw2, ratio * grads[2], atol=1e-8, rtol=1e-6):
                raise AssertionError(f"{what}: every gradient is {ratio:.3g} times the right one; dL/dy of "
                                     f"mean((y - t)²) is 2(y - t)/(N·out) — the factor 2 of the square, and the "
                                     "mean over all N·out entries")
        z = x @ w1.T + b1
        dz_unmasked = (2 * (F.linear(torch.relu(z), w2, b2) - target) / target.numel()) @ w2
        if torch.allclose(mine[0].to(torch.float64), dz_unmasked.T @ x, atol=1e-8) \
                and not torch.allclose(dz_unmasked.T @ x, grads[0], atol=1e-8):
            raise AssertionError(f"{what}: grad_W1 lets the gradient through the ReLU everywhere; the ReLU passes "
                                 "it only where its input z = x W1ᵀ + b1 was positive: dz = dh · (z > 0)")
        for name, m, ref in zip(names, mine, grads):
            assert_tensor_close(m, ref, f"{what}: {name}", atol=1e-8, rtol=1e-6)


# --- 01.fix_init: a deep MLP whose initialisation shrinks the signal (find the bug) ----------------------------

# (n_in, width, depth, n_classes, seed): the digits' 64 pixels into a wide net, many inputs into a narrow one,
# and few inputs into a medium one, so that a scale taken from the width instead of fan_in shows in layer 1.
INIT_CASES = ((64, 256, 10, 10, 0), (300, 32, 6, 3, 1), (20, 64, 4, 5, 2))


def _init_input(n_in: int, seed: int) -> torch.Tensor:
    return torch.randn(512, n_in, generator=_gen(400 + seed))  # RMS 1


def probe_deep_mlp(cls: Any, cases: tuple) -> list[dict]:
    """Build ``cls(n_in, width, depth, n_classes)`` for each case, run it on a batch; report output and weights."""
    return [run_module(cls, (n_in, width, depth, n_classes), seed, _init_input(n_in, seed),
                       f"DeepMLP({n_in}, {width}, {depth}, {n_classes})", eval_mode=False)
            for n_in, width, depth, n_classes, seed in cases]


def _init_cause(std: float, fan_in: int, fan_out: int) -> str:
    """What a weight std that is not sqrt(2 / fan_in) most likely is, in words."""
    causes = {"no factor 2": (math.sqrt(1 / fan_in), "std sqrt(1 / fan_in) lacks ReLU's factor 2: a ReLU zeroes "
                                                     "half of its inputs, and Var(w) = 2 / fan_in makes up for it"),
              "default": (1 / math.sqrt(3 * fan_in), "that is PyTorch's default initialisation of nn.Linear "
                                                     "(std 1/sqrt(3·fan_in)), which is not Kaiming's for ReLU")}
    if fan_out != fan_in:
        causes["xavier"] = (math.sqrt(2 / (fan_in + fan_out)), "that is Xavier's std sqrt(2 / (fan_in + fan_out)), "
                                                               "made for tanh; a ReLU layer needs sqrt(2 / fan_in)")
        for k in (1, 2):
            causes[f"fan_out {k}"] = (math.sqrt(k / fan_out), "the scale must come from the layer's fan_in, its "
                                      f"number of inputs ({fan_in}), not from its width or outputs ({fan_out})")
    error, text = min((abs(std / value - 1), text) for value, text in causes.values())
    return text if error < 0.08 else "expected Kaiming's std for ReLU"


@register("01.fix_init", points=2, timeout=30, kind="find-the-bug",
          hint="the forward pass is right; every hidden layer's weights need std sqrt(2 / fan_in) (Kaiming, for "
               "ReLU), fan_in being that layer's own number of inputs (layer.in_features)")
def _fix_init(fn: Any) -> None:
    seen = fn.probe(probe_deep_mlp, INIT_CASES)
    assert isinstance(seen, list) and len(seen) == len(INIT_CASES), "the hidden test could not build your DeepMLP"
    for (n_in, width, depth, n_classes, seed), s in zip(INIT_CASES, seen):
        what = f"DeepMLP({n_in}, {width}, {depth}, {n_classes})"
        if "error" in s:
            raise AssertionError(s["error"])
        state, out = s["state"], s["out"]
        sizes = [n_in] + [width] * depth
        want = {f"hidden.{i}.weight": (b, a) for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))}
        want |= {f"hidden.{i}.bias": (b,) for i, b in enumerate(sizes[1:])}
        want |= {"out.weight": (n_classes, width), "out.bias": (n_classes,)}
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        if shapes != want:
            odd = sorted(k for k in shapes.keys() | want.keys() if shapes.get(k) != want.get(k))
            raise AssertionError(f"{what}: its parameters differ from the given layers' ({', '.join(odd[:4])}"
                                 f"{', …' if len(odd) > 4 else ''}); keep the given layers (self.hidden, self.out) "
                                 "as they are and fix only how their weights are initialised")
        x = _init_input(n_in, seed)
        h, rms = x, []
        for i in range(depth):
            h = torch.relu(F.linear(h, state[f"hidden.{i}.weight"], state[f"hidden.{i}.bias"]))
            rms.append(float(h.pow(2).mean().sqrt()))
        logits = F.linear(h, state["out.weight"], state["out.bias"])
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(logits.shape) \
                or not torch.allclose(out, logits, atol=1e-4, rtol=1e-3):
            raise AssertionError(f"{what}: the forward pass is not the given one (relu(layer(x)) for each hidden "
                                 "layer, then self.out); leave forward as it is and fix the initialisation")
        symptom = (f"on inputs of RMS 1, the activations' RMS is {rms[0]:.2g} after hidden layer 1 and "
                   f"{rms[-1]:.2g} after layer {depth}")
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            w = state[f"hidden.{i}.weight"]
            std, mean, good = float(w.std()), float(w.mean()), math.sqrt(2 / fan_in)
            if abs(std / good - 1) > 0.1:
                raise AssertionError(f"{what}: {symptom}. Hidden layer {i + 1} (fan_in {fan_in}, {fan_out} outputs) "
                                     f"has weights of std {std:.3g}, expected sqrt(2 / fan_in) = {good:.3g}: "
                                     f"{_init_cause(std, fan_in, fan_out)}")
            if abs(mean) > 0.1 * good:
                raise AssertionError(f"{what}: hidden layer {i + 1}'s weights have mean {mean:.3g}; draw them "
                                     "centred on 0")
        if not all(0.5 < r < 2 for r in rms):
            raise AssertionError(f"{what}: {symptom}; with Kaiming's initialisation it stays of order one (between "
                                 "0.5 and 2) — are the biases far from 0?")


def ks_distance(w: torch.Tensor, std: float) -> float:
    """Kolmogorov–Smirnov distance between the values of ``w`` and the normal distribution N(0, std²)."""
    z = (w.detach().flatten().double() / std).sort().values
    n = z.numel()
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    rank = torch.arange(1, n + 1, dtype=torch.double)
    return float(torch.maximum(rank / n - cdf, cdf - (rank - 1) / n).max())


@register("01.kaiming_init", points=1,
          hint="scale a standard normal of shape [fan_out, fan_in] (drawn with generator=generator) by "
          "sqrt(2 / fan_in)", timeout=20)
def _kaiming_init(fn: Any) -> None:
    for fan_in, fan_out in [(400, 300), (100, 800), (1600, 200)]:
        w = fn(fan_in, fan_out, torch.Generator().manual_seed(fan_in))
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != (fan_out, fan_in):
            raise AssertionError(f"kaiming_init({fan_in}, {fan_out}) must return a tensor of shape "
                                 f"[{fan_out}, {fan_in}] (one row per output), got "
                                 f"{list(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__}")
        want = math.sqrt(2 / fan_in)
        std, mean = float(w.std()), float(w.mean())
        assert abs(std / want - 1) < 0.05, (f"kaiming_init({fan_in}, {fan_out}): std {std:.4f}, expected "
                                            f"sqrt(2 / fan_in) = {want:.4f}")
        assert abs(mean) < 0.1 * want, f"kaiming_init({fan_in}, {fan_out}): mean {mean:.4f}, expected about 0"
        distance = ks_distance(w, want)  # about 0.003 for a normal sample this size, 0.06 for a uniform one
        assert distance < 0.01, (f"kaiming_init({fan_in}, {fan_out}): the right spread, but the weights are not "
                                 f"normally distributed (Kolmogorov–Smirnov distance {distance:.3f} from "
                                 "N(0, 2 / fan_in)); draw from a normal distribution (torch.randn), not a uniform "
                                 "or truncated one")
    a = fn(50, 50, torch.Generator().manual_seed(1))
    b = fn(50, 50, torch.Generator().manual_seed(1))
    assert torch.equal(a, b), "kaiming_init must draw from the generator it is given (same seed, same weights)"
