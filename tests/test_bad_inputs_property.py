"""Property test: random shapes, dtypes and masks fed to ``Batch``, datasets, encoders, fusions and late fusion.

Whatever comes in, the library either returns a correct, finite result or raises a ``ValueError``/``TypeError``
from one of its own ``raise`` statements (a message written by mmcourse) — never a raw error from deep inside
torch and never a NaN or inf. Examples are bounded and derandomised, so the test is fast and reproducible.
"""

import functools
import linecache
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mmcourse
from mmcourse.batch import MODALITIES, Batch
from mmcourse.data import MultimodalDataset
from mmcourse.encoders import AudioCNN, GRUTextEncoder, SmallCNN, TransformerTextEncoder, Video2Plus1D, Video3DCNN
from mmcourse.fusion import build_fusion
from mmcourse.models import LateFusionModel

PACKAGE = Path(mmcourse.__file__).resolve().parent
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DTYPES = [torch.float32, torch.float64, torch.float16, torch.uint8, torch.int32, torch.int64, torch.bool]


def assert_raised_by_mmcourse(err: BaseException) -> None:
    """``err`` is a ValueError/TypeError raised by a ``raise`` statement in mmcourse's own code."""
    assert isinstance(err, (ValueError, TypeError)), f"not a ValueError/TypeError: {type(err).__name__}: {err}"
    tb = err.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    path = Path(tb.tb_frame.f_code.co_filename).resolve()
    assert PACKAGE in path.parents, f"raised outside mmcourse ({path}): {type(err).__name__}: {err}"
    lines = [linecache.getline(str(path), n).strip() for n in range(max(1, tb.tb_lineno - 3), tb.tb_lineno + 1)]
    assert any(line.startswith("raise ") for line in lines), f"not an mmcourse raise ({path}:{tb.tb_lineno}): {err}"


def _tensor(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tuple(shape), generator=g)
    if dtype == torch.bool:
        return x > 0
    if not dtype.is_floating_point:
        return (x.abs() * 3).to(dtype)
    return x.to(dtype)


@st.composite
def masks(draw, names, b):
    present = {}
    for m in draw(st.lists(st.sampled_from([*names, "imgae"]), max_size=3, unique=True)):
        dtype = draw(st.sampled_from([torch.bool, torch.bool, torch.float32, torch.int64]))
        shape = draw(st.sampled_from([(b,), (b,), (b + 2,), (b, 1), ()]))
        present[m] = _tensor(shape, dtype, seed=len(present))
    return present


@SETTINGS
@given(data=st.data())
def test_batch_construction(data):
    b = data.draw(st.integers(1, 4))
    names = data.draw(st.lists(st.sampled_from([*MODALITIES, "depth"]), min_size=1, max_size=3, unique=True))
    inputs = {m: _tensor((data.draw(st.sampled_from([b, b, b + 1])), *data.draw(st.sampled_from([(3, 4, 4), (5,)]))),
                         data.draw(st.sampled_from(DTYPES))) for m in names}
    targets = {"shape": _tensor(data.draw(st.sampled_from([(b,), (b,), (b, 1), (b + 1,)])),
                                data.draw(st.sampled_from([torch.int64, torch.int64, torch.float32, torch.int32])))}
    present = data.draw(st.one_of(st.none(), masks(names, b)))
    try:
        batch = Batch(inputs, targets, present)
    except Exception as e:  # noqa: BLE001 - the property is about which errors
        assert_raised_by_mmcourse(e)
        return
    n = len(batch)
    assert all(x.shape[0] == n for x in (*batch.inputs.values(), *batch.targets.values()))
    assert all(t.dtype == torch.int64 and t.shape == (n,) for t in batch.targets.values())
    for m, p in (batch.present or {}).items():
        assert m in batch.inputs and p.dtype == torch.bool and p.shape == (n,)


@SETTINGS
@given(data=st.data())
def test_dataset_construction(data):
    n = data.draw(st.integers(1, 6))
    image = _tensor((n, 3, 4, 4), torch.float32)
    if data.draw(st.booleans()):
        image[0, 0, 0, 0] = data.draw(st.sampled_from([float("nan"), float("inf"), 0.5]))
    image = image.to(data.draw(st.sampled_from([torch.float32, torch.float32, torch.float64, torch.uint8])))
    labels = torch.tensor(data.draw(st.lists(st.integers(-101, 4), min_size=n, max_size=n)), dtype=torch.int64)
    try:
        ds = MultimodalDataset({"image": image}, {"shape": labels}, {"shape": ["a", "b", "c"]})
    except Exception as e:  # noqa: BLE001
        assert_raised_by_mmcourse(e)
        return
    y = ds.targets["shape"]
    assert bool(((y == -100) | ((y >= 0) & (y < 3))).all()) and bool(torch.isfinite(ds.inputs["image"]).all())


ENCODERS = {
    "image": (lambda: SmallCNN(width=2, out_dim=4), 4),
    "audio": (lambda: AudioCNN(out_dim=4, width=2), 4),
    "video3d": (lambda: Video3DCNN(out_dim=4, width=2), 5),
    "video2plus1d": (lambda: Video2Plus1D(out_dim=4, width=2), 5),
}


@functools.cache
def _encoder(kind):
    make, rank = ENCODERS[kind]
    torch.manual_seed(0)
    return make(), rank


@pytest.mark.parametrize("kind", list(ENCODERS))
@SETTINGS
@given(data=st.data())
def test_conv_encoders(kind, data):
    enc, rank = _encoder(kind)
    enc.train(data.draw(st.booleans()))
    ndim = data.draw(st.sampled_from([rank, rank, rank - 1, rank + 1]))
    shape = [data.draw(st.integers(0, 3))] + [data.draw(st.integers(0, 9)) for _ in range(ndim - 1)]
    if data.draw(st.booleans()) and ndim >= 2:
        shape[1] = 1 if kind == "audio" else 3  # often the right channel count, so the size checks are reached
    x = _tensor(shape, data.draw(st.sampled_from([torch.float32, torch.float32, torch.float64, torch.uint8])))
    try:
        out = enc(x)
    except Exception as e:  # noqa: BLE001
        assert_raised_by_mmcourse(e)
        return
    assert out.shape == (shape[0], 4) and bool(torch.isfinite(out).all())


TEXT = {"gru": lambda: GRUTextEncoder(12, dim=4), "transformer": lambda: TransformerTextEncoder(12, 4, 1, 2, 8)}


@functools.cache
def _text_encoder(kind):
    torch.manual_seed(0)
    return TEXT[kind]()


@pytest.mark.parametrize("kind", list(TEXT))
@SETTINGS
@given(data=st.data())
def test_text_encoders(kind, data):
    enc = _text_encoder(kind)
    shape = data.draw(st.sampled_from([(2, 5), (3, 1), (2, 12), (5,), (2, 3, 4), (0, 4)]))
    dtype = data.draw(st.sampled_from([torch.int64, torch.int64, torch.int32, torch.float32]))
    x = torch.randint(0, data.draw(st.sampled_from([12, 12, 20])), shape).to(dtype)
    if data.draw(st.booleans()) and x.numel():
        x.view(-1)[0] = -1
    try:
        out = enc(x)
    except Exception as e:  # noqa: BLE001
        assert_raised_by_mmcourse(e)
        return
    assert out.shape == (shape[0], 4) and bool(torch.isfinite(out).all())


DIMS = {"image": 4, "audio": 3, "text": 2}
FUSIONS = {"concat": {}, "weighted": {"dim": 4}, "gated": {"dim": 4}, "tensor": {"out_dim": 4},
           "low_rank_tensor": {"out_dim": 4, "rank": 2}, "transformer": {"dim": 4, "heads": 2},
           "cross_attention": {"dim": 4, "heads": 2}}


@functools.cache
def _fusion(name):
    torch.manual_seed(0)
    return build_fusion(name, DIMS, **FUSIONS[name])


@pytest.mark.parametrize("name", list(FUSIONS))
@SETTINGS
@given(data=st.data())
def test_fusions(name, data):
    fusion = _fusion(name)
    b = data.draw(st.integers(1, 4))
    names = data.draw(st.lists(st.sampled_from([*DIMS, "video"]), min_size=0, max_size=3, unique=True))
    feats = {}
    for m in names:
        width = DIMS.get(m, 5) + data.draw(st.sampled_from([0, 0, 0, 1]))
        rows = data.draw(st.sampled_from([b, b, b, b + 1]))
        tokens = name == "cross_attention" and data.draw(st.booleans())
        lead = (rows, data.draw(st.integers(1, 3))) if tokens else (rows,)
        feats[m] = _tensor((*lead, width), data.draw(st.sampled_from([torch.float32, torch.float32, torch.int64])))
    present = data.draw(st.one_of(st.none(), masks(list(DIMS), b)))
    try:
        out = fusion(feats, present)
    except Exception as e:  # noqa: BLE001
        assert_raised_by_mmcourse(e)
        return
    n = next(iter(feats.values())).shape[0]  # every modality had n rows, or it raised
    assert out.shape == (n, fusion.out_dim) and bool(torch.isfinite(out).all())


@SETTINGS
@given(data=st.data())
def test_late_fusion(data):
    torch.manual_seed(0)
    model = LateFusionModel({"image": torch.nn.Linear(4, 3), "audio": torch.nn.Linear(2, 3)},
                            {"image": {"shape": torch.nn.Linear(3, 5)}, "audio": {"shape": torch.nn.Linear(3, 5)}},
                            combine=data.draw(st.sampled_from(["mean_logits", "mean_probs"])))
    b = data.draw(st.integers(1, 4))
    names = data.draw(st.lists(st.sampled_from(["image", "audio"]), min_size=1, max_size=2, unique=True))
    inputs = {m: _tensor((data.draw(st.sampled_from([b, b, b + 1])), 4 if m == "image" else 2), torch.float32)
              for m in names}
    present = data.draw(st.one_of(st.none(), masks(["image", "audio"], b)))
    try:
        out = model(inputs, present)
    except Exception as e:  # noqa: BLE001
        assert_raised_by_mmcourse(e)
        return
    n = next(iter(inputs.values())).shape[0]
    assert out["shape"].shape == (n, 5) and bool(torch.isfinite(out["shape"]).all())
