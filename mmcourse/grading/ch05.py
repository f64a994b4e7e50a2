"""Hidden tests of chapter 5's exercises (residual networks): a basic block, its shortcut, counting parameters,
and fixing the source post's "residual" block, which has no skip connection (find the bug).

The learner's notebook is ``solutions/05_residual_networks.ipynb`` (``exercises/`` holds the blank copy).
"""

from __future__ import annotations

import torch
from torch import nn

from mmcourse.grading.registry import register
from mmcourse.layers.residual import BasicBlock


def _random_block(in_ch: int, out_ch: int, stride: int, seed: int) -> BasicBlock:
    """A block in eval mode with non-trivial batch-norm statistics, so a missing BN shows."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    b = BasicBlock(in_ch, out_ch, stride)
    for m in b.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return b.eval()


@register("05.basic_block", points=2, timeout=30,
          hint="out = bn2(conv2(relu(bn1(conv1(x))))); return relu(out + shortcut(x))")
def _basic_block(fn):
    for in_ch, out_ch, stride in ((4, 4, 1), (4, 8, 2)):
        b = _random_block(in_ch, out_ch, stride, seed=in_ch + out_ch)
        x = torch.randn(2, in_ch, 8, 8, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            got = fn(x, b.conv1, b.bn1, b.conv2, b.bn2, b.shortcut)
            want = b(x)
        assert isinstance(got, torch.Tensor), f"return a tensor, got {type(got).__name__}"
        assert got.shape == want.shape, f"output shape {tuple(got.shape)}, expected {tuple(want.shape)}"
        if torch.allclose(got, torch.relu(b.residual(x)), atol=1e-5):
            raise AssertionError("the output ignores the shortcut: add shortcut(x) before the last ReLU")
        where = f"in={in_ch}, out={out_ch}, stride={stride}"
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4,
                                   msg=lambda m, where=where: f"block output differs ({where}): {m}")


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
        torch.manual_seed(seed)
        try:
            block = cls(in_ch, out_ch, stride)
        except NotImplementedError:  # a blank exercise: "not implemented", not a failure
            raise
        except Exception as e:  # noqa: BLE001 - reported to the check
            seen.append({"error": f"{what} raised {type(e).__name__}: {e}"})
            continue
        if not isinstance(block, nn.Module):
            seen.append({"error": f"{what} is a {type(block).__name__}, not an nn.Module"})
            continue
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in block.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                    m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                    m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
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


@register("05.fix_residual_block", points=2, timeout=60,
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
