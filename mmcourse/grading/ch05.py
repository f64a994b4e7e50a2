"""Hidden tests of chapter 5's exercises (residual networks): a block's shortcut, ResNet-50's bottleneck block
(checked against torchvision's), counting parameters, fixing the source post's "residual" block, which has no
skip connection (find the bug), and deleting one block of a trained network (experiment).

The learner's notebook is ``solutions/05_residual_networks.ipynb`` (``exercises/`` holds the blank copy).
"""

from __future__ import annotations

import torch
from torch import nn

from mmcourse.grading.choices import check_choices
from mmcourse.grading.probing import build_module
from mmcourse.grading.registry import register
from mmcourse.layers.residual import BasicBlock, Bottleneck, projection_shortcut

# --- 05.projection_shortcut: the shortcut S, identity or projection ------------------------------------------

SHORTCUT_CASES = ((8, 8, 1), (8, 16, 2), (8, 16, 1), (8, 8, 2))


def probe_shortcut(make, cases) -> list[dict]:
    """Build each shortcut, run it (eval mode) on a fixed input, and report its structure (beside the answer)."""
    x = torch.randn(2, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    seen = []
    for in_ch, out_ch, stride in cases:
        m = make(in_ch, out_ch, stride)
        if not isinstance(m, nn.Module):
            seen.append({"type": type(m).__name__})
            continue
        m.eval()
        with torch.no_grad():
            y = m(x)
        convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
        seen.append({"type": "module", "n_params": sum(p.numel() for p in m.parameters()), "out": y,
                     "convs": [{"kernel": list(c.kernel_size), "stride": list(c.stride), "bias": c.bias is not None}
                               for c in convs],
                     "bn": any(isinstance(b, nn.BatchNorm2d) for b in m.modules())})
    return seen


@register("05.projection_shortcut", points=2,
          hint="nn.Identity() when stride == 1 and in_ch == out_ch, else nn.Sequential(1×1 conv with stride, BN)",
          timeout=30)
def _projection_shortcut(fn):
    x = torch.randn(2, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    seen = fn.probe(probe_shortcut, SHORTCUT_CASES)
    for (in_ch, out_ch, stride), s in zip(SHORTCUT_CASES, seen):
        assert s["type"] == "module", f"return an nn.Module, got {s['type']}"
        call = f"make_shortcut({in_ch}, {out_ch}, {stride})"
        if in_ch == out_ch and stride == 1:
            assert s["n_params"] == 0, f"{call}: when the shape is kept the shortcut needs no parameters"
            torch.testing.assert_close(s["out"], x, msg=lambda m: f"same-shape shortcut must be the identity: {m}")
            continue
        want = (2, out_ch, 8 // stride, 8 // stride)
        assert tuple(s["out"].shape) == want, f"{call} gives {tuple(s['out'].shape)}, expected {want}"
        assert len(s["convs"]) == 1 and s["convs"][0]["kernel"] == [1, 1], f"{call}: a projection is one 1×1 conv"
        assert s["convs"][0]["stride"] == [stride, stride], f"{call}: the 1×1 conv needs stride {stride}"
        assert not s["convs"][0]["bias"], f"{call}: the conv needs no bias: the batch norm after it has one"
        assert s["bn"], f"{call}: follow the 1×1 conv with a BatchNorm2d"


# --- 05.bottleneck_block: ResNet-50's block, 1×1 → 3×3 → 1×1 with expansion 4 --------------------------------

# (in_ch, mid_ch, stride, seed): an identity block (16 = 4 × 4 channels in and out), a projection for the
# channels only (8 → 16), one for the stride and the channels (16 → 32, stride 2) and one for the stride only.
BOTTLENECK_CASES = ((16, 4, 1, 0), (8, 4, 1, 1), (16, 8, 2, 2), (16, 4, 2, 3))
EXPANSION = 4


def _bottleneck_input(in_ch: int, seed: int) -> torch.Tensor:
    return torch.randn(2, in_ch, 7, 10, generator=torch.Generator().manual_seed(200 + seed))  # H != W, H odd


def _randomise_bn(module: nn.Module, seed: int) -> None:
    """Non-trivial running statistics, scale and shift in every batch norm, so a missing or misplaced one shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)



def probe_bottleneck(cls, cases) -> list[dict]:
    """Build each block, randomise its batch norms, run it in eval mode; report its weights, its convs' strides
    and any library class it is built on."""
    seen = []
    for in_ch, mid_ch, stride, seed in cases:
        what = f"BottleneckBlock({in_ch}, {mid_ch}, stride={stride})"
        block = build_module(cls, (in_ch, mid_ch, stride), seed, what)
        if isinstance(block, dict):
            seen.append(block)
            continue
        borrowed = [f"{c.__module__}.{c.__qualname__}" for c in type(block).__mro__
                    if c.__module__.split(".")[0] in ("mmcourse", "torchvision")]
        if borrowed:
            seen.append({"borrowed": borrowed[0]})
            continue
        _randomise_bn(block, seed)
        block.eval()
        state = {k: v.detach().clone() for k, v in block.state_dict().items()}
        strides = {name: list(m.stride) for name, m in block.named_modules() if isinstance(m, nn.Conv2d)}
        x = _bottleneck_input(in_ch, seed)
        try:
            with torch.no_grad():
                out = block(x)
        except NotImplementedError:
            raise
        except Exception as e:  # noqa: BLE001 - reported to the check
            seen.append({"error": f"{what} on x [2, {in_ch}, 7, 10] raised {type(e).__name__}: {e}"})
            continue
        seen.append({"out": out, "state": state, "strides": strides})
    return seen


def _reference_bottleneck(in_ch: int, mid_ch: int, stride: int) -> tuple[nn.Module, str]:
    """torchvision's Bottleneck (ResNet v1.5: the stride on the 3×3 conv) and the name of its shortcut; where
    torchvision is not installed, mmcourse's block, which is the same block."""
    try:
        from torchvision.models.resnet import Bottleneck as TorchvisionBottleneck
    except ImportError:  # torchvision comes with the [pretrained] extra
        return Bottleneck(in_ch, mid_ch, stride), "shortcut"
    proj = projection_shortcut(in_ch, mid_ch * EXPANSION, stride)
    down = None if isinstance(proj, nn.Identity) else proj
    return TorchvisionBottleneck(in_ch, mid_ch, stride, downsample=down), "downsample"


def _state_problem(what: str, state: dict, want: dict, in_ch: int, mid_ch: int, stride: int) -> str:
    """Why the learner's weights do not fit the reference block, in words."""
    out_ch = mid_ch * EXPANSION
    got = {k: list(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    ref = {k: list(v.shape) for k, v in want.items() if not k.endswith("num_batches_tracked")}
    conv3 = got.get("conv3.weight")
    if conv3 is not None and conv3[0] != out_ch:
        return (f"{what}: conv3 outputs {conv3[0]} channels; the last 1×1 conv expands to mid_ch × expansion = "
                f"{mid_ch} × {EXPANSION} = {out_ch} channels (the block's output)")
    if any(k in ("conv1.bias", "conv2.bias", "conv3.bias", "shortcut.0.bias") for k in got):
        return f"{what}: a convolution has a bias; each is followed by a batch norm, so use bias=False"
    projects = any(k.startswith("shortcut.") for k in ref)
    if projects and not any(k.startswith("shortcut.") for k in got):
        return (f"{what}: [2, {in_ch}, H, W] becomes [2, {out_ch}, H/{stride}, W/{stride}], so x no longer fits: "
                f"the shortcut must project it (a 1×1 conv with stride {stride}, no bias, then a BatchNorm2d)")
    if not projects and any(k.startswith("shortcut.") for k in got):
        return (f"{what} keeps the shape ({in_ch} = {mid_ch} × {EXPANSION} channels, stride 1): the shortcut is "
                "the identity, with no parameters")
    missing = sorted(set(ref) - set(got))
    extra = sorted(set(got) - set(ref))
    shapes = {k: (got[k], ref[k]) for k in set(got) & set(ref) if got[k] != ref[k]}
    return (f"{what}: its weights do not fit the bottleneck block (conv1 1×1 {in_ch}→{mid_ch}, conv2 3×3 "
            f"{mid_ch}→{mid_ch}, conv3 1×1 {mid_ch}→{out_ch}, bn1, bn2, bn3, and shortcut): missing {missing}, "
            f"unexpected {extra}, wrong shapes {shapes} (got, expected)")


@register("05.bottleneck_block", points=2, timeout=60, kind="build",
          hint="conv1 1×1 in_ch→mid_ch, conv2 3×3 mid_ch→mid_ch with the stride and padding 1, conv3 1×1 "
               "mid_ch→4·mid_ch, each without bias and followed by its BN; ReLU after bn1 and bn2, and after "
               "adding the shortcut (your make_shortcut(in_ch, 4 * mid_ch, stride))")
def _bottleneck_block(fn):
    seen = fn.probe(probe_bottleneck, BOTTLENECK_CASES)
    assert isinstance(seen, list) and len(seen) == len(BOTTLENECK_CASES), "the hidden test could not build your blocks"
    for (in_ch, mid_ch, stride, seed), s in zip(BOTTLENECK_CASES, seen):
        what = f"BottleneckBlock({in_ch}, {mid_ch}, stride={stride})"
        if "error" in s:
            raise AssertionError(f"{s['error']}. When the stride or the channel count changes (the block outputs "
                                 "mid_ch × 4 channels), x no longer fits F(x): project it with a 1×1 conv (that "
                                 "stride, no bias) and a BatchNorm2d")
        if "borrowed" in s:
            raise AssertionError(f"{what} is built on {s['borrowed']}: write the block yourself, from nn.Conv2d "
                                 "and nn.BatchNorm2d layers")
        ref, sc_name = _reference_bottleneck(in_ch, mid_ch, stride)
        want_state = {k.replace(f"{sc_name}.", "shortcut."): v for k, v in ref.state_dict().items()}
        state = {k.replace("shortcut.", f"{sc_name}."): v for k, v in s["state"].items()}
        try:
            ref.load_state_dict(state)
        except RuntimeError:
            raise AssertionError(_state_problem(what, s["state"], want_state, in_ch, mid_ch, stride)) from None
        ref.eval()
        x = _bottleneck_input(in_ch, seed)
        with torch.no_grad():
            want = ref(x)
            h = torch.relu(ref.bn2(ref.conv2(torch.relu(ref.bn1(ref.conv1(x))))))
            branch, shortcut = ref.bn3(ref.conv3(h)), getattr(ref, sc_name)
            skip = x if shortcut is None else shortcut(x)
        out = s["out"]
        assert isinstance(out, torch.Tensor), f"{what}: forward should return a tensor, got {type(out).__name__}"
        assert tuple(out.shape) == tuple(want.shape), \
            f"{what} maps [2, {in_ch}, 7, 10] to {tuple(out.shape)}, expected {tuple(want.shape)}"
        if torch.allclose(out, want, atol=1e-5, rtol=1e-4):
            continue
        if s["strides"].get("conv1") != [1, 1] or s["strides"].get("conv2") != [stride, stride]:
            raise AssertionError(f"{what}: the stride goes on the 3×3 conv (conv2), as in torchvision's Bottleneck; "
                                 f"your convs have the strides {s['strides']}. A 1×1 conv with stride 2 reads one "
                                 "position in four and drops the rest")
        if torch.allclose(out, torch.relu(branch) + skip, atol=1e-5):
            raise AssertionError(f"{what}: the ReLU is applied before the addition; add the shortcut to "
                                 "bn3(conv3(...)) first, then apply the ReLU: relu(F(x) + S(x))")
        if torch.allclose(out, branch + skip, atol=1e-5):
            raise AssertionError(f"{what}: no ReLU after the addition: return relu(F(x) + S(x))")
        torch.testing.assert_close(
            out, want, atol=1e-5, rtol=1e-4,
            msg=lambda m, what=what: f"{what}: the output is not relu(bn3(conv3(h)) + S(x)) with "
                                     f"h = relu(bn2(conv2(relu(bn1(conv1(x)))))): {m}")


@register("05.count_params", points=1, hint="sum p.numel() over model.parameters() whose requires_grad is True",
          timeout=30)
def _count_params(fn):
    lin = nn.Linear(10, 5)  # 55
    model = nn.Sequential(lin, nn.ReLU(), nn.Linear(5, 3), nn.BatchNorm1d(3))  # 55 + 18 + 6 = 79
    got = fn(model)
    assert got == 79, f"count_params of Linear(10,5), Linear(5,3), BatchNorm1d(3) should be 79, got {got}"
    lin.weight.requires_grad_(False)
    got = fn(model)
    assert got == 29, f"frozen parameters (requires_grad=False) do not count: expected 29, got {got}"
    shared = nn.Sequential(lin, lin)  # the same layer twice has its parameters once
    assert fn(shared) == 5, f"a module used twice counts once (model.parameters() deduplicates), got {fn(shared)}"


# --- 05.fix_residual_block: the source post's "residual" block, fixed ---------------------------------------

# (in_ch, out_ch, stride, seed): an RGB stem block (3 channels in, a projection), an identity block, a
# stride-2 block that doubles the channels, and a stride-2 block that keeps them (a projection all the same).
FIX_CASES = ((3, 16, 1, 0), (16, 16, 1, 1), (16, 32, 2, 2), (16, 16, 2, 3))


def _block_input(in_ch: int, seed: int) -> torch.Tensor:
    return torch.randn(2, in_ch, 8, 6, generator=torch.Generator().manual_seed(100 + seed))  # H != W


def probe_fixed_block(cls, cases) -> list[dict]:
    """Build each block, give its batch norms non-trivial statistics, run it in eval mode; then switch the
    residual branch off (``bn2``'s weight and bias zero) and measure the gradient that reaches the input."""
    seen = []
    for in_ch, out_ch, stride, seed in cases:
        what = f"ResBlock({in_ch}, {out_ch}, stride={stride})"
        block = build_module(cls, (in_ch, out_ch, stride), seed, what)
        if isinstance(block, dict):
            seen.append(block)
            continue
        _randomise_bn(block, seed)
        block.eval()
        state = {k: v.detach().clone() for k, v in block.state_dict().items()}
        x = _block_input(in_ch, seed)
        try:
            with torch.no_grad():
                out = block(x)
        except NotImplementedError:  # a blank exercise: "not implemented", not a failure
            raise
        except Exception as e:  # noqa: BLE001 - reported to the check
            seen.append({"error": f"{what} on x [2, {in_ch}, 8, 6] raised {type(e).__name__}: {e}"})
            continue
        grad = None
        bn2 = getattr(block, "bn2", None)
        if isinstance(bn2, nn.BatchNorm2d):
            with torch.no_grad():
                bn2.weight.zero_()
                bn2.bias.zero_()
            xr = x.clone().requires_grad_()
            with torch.enable_grad():
                block(xr).sum().backward()
            grad = 0.0 if xr.grad is None else xr.grad.abs().sum().item()
        seen.append({"out": out, "state": state, "grad_off": grad})
    return seen


@register("05.fix_residual_block", points=2, timeout=60, kind="find-the-bug",
          hint="keep conv1, bn1, conv2, bn2; add self.shortcut = make_shortcut(in_ch, out_ch, stride) and "
               "return relu(bn2(conv2(relu(bn1(conv1(x))))) + self.shortcut(x))")
def _fix_residual_block(fn):
    seen = fn.probe(probe_fixed_block, FIX_CASES)
    assert isinstance(seen, list) and len(seen) == len(FIX_CASES), "the hidden test could not build your blocks"
    for (in_ch, out_ch, stride, seed), s in zip(FIX_CASES, seen):
        what = f"ResBlock({in_ch}, {out_ch}, stride={stride})"
        if "error" in s:
            raise AssertionError(f"{s['error']}. When the stride or the channel count changes, x no longer fits "
                                 "F(x): project it with a 1×1 conv (that stride, no bias) and a BatchNorm2d")
        assert s["grad_off"] is not None, f"{what}: keep the layer names conv1, bn1, conv2, bn2 of the post's block"
        assert s["grad_off"] > 0, (f"{what}: with the residual branch switched off (bn2's weight and bias zero) no "
                                   "gradient reaches the input — there is no skip connection: forward must add "
                                   "the shortcut S(x) to the branch F(x)")
        ref = BasicBlock(in_ch, out_ch, stride)
        try:
            ref.load_state_dict(s["state"])
        except RuntimeError:
            keys = sorted(k for k in s["state"] if not k.endswith("num_batches_tracked"))
            if in_ch == out_ch and stride == 1:
                expect = "no parameters in the shortcut (the identity keeps the shape)"
            else:
                expect = "a shortcut nn.Sequential(1×1 conv without bias, BatchNorm2d) as make_shortcut builds it"
            raise AssertionError(f"{what} has the parameters {keys}; expected conv1 and conv2 (3×3, no bias), bn1, "
                                 f"bn2 and {expect}") from None
        ref.eval()
        x = _block_input(in_ch, seed)
        with torch.no_grad():
            want, branch = ref(x), ref.residual(x)
            late = torch.relu(branch) + ref.shortcut(x)
        out = s["out"]
        assert isinstance(out, torch.Tensor), f"{what}: forward should return a tensor, got {type(out).__name__}"
        assert tuple(out.shape) == tuple(want.shape), \
            f"{what} maps [2, {in_ch}, 8, 6] to {tuple(out.shape)}, expected {tuple(want.shape)}"
        if torch.allclose(out, late, atol=1e-5):
            raise AssertionError(f"{what}: the shortcut is added after the last ReLU; add S(x) to F(x) first, then "
                                 "apply the ReLU: relu(F(x) + S(x))")
        torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-4,
                                   msg=lambda m, what=what: f"{what}: the output is not relu(F(x) + S(x)): {m}")


# --- 05.lesion: delete one block of a trained network (experiment and interpret) ------------------------------

LESION_KEYS = ("plain, first block", "plain, last block", "residual, first block", "residual, last block")
LESION_OPTIONS = ("keeps", "loses")
# What the run of the exercise shows (every seed tried): a plain network falls towards chance whichever block is
# deleted; a residual network loses much of its accuracy without its first block and keeps it (within 10
# points) without its last — the later blocks make small corrections on the identity path (Veit et al., 2016).
LESION_ANSWER = {"plain, first block": "loses", "plain, last block": "loses",
                 "residual, first block": "loses", "residual, last block": "keeps"}


@register("05.lesion", points=2, timeout=10, kind="experiment",
          hint="run the deletion cell and read its table: 'keeps' when the accuracy stays within 10 points of the "
               "intact network's, else 'loses'; then ask what a deleted block leaves on the path from input to "
               "output in each network")
def _lesion(fn):
    check_choices(fn(), answer=LESION_ANSWER, options=LESION_OPTIONS, fn_name="lesion_answers",
                  what="{case: 'keeps' or 'loses'}", cases="the four cases",
                  advice="read the table again "
                  "('keeps' = within 10 points of the intact network) — a plain network and a "
                  "residual network do not react alike")
