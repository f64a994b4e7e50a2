"""mmcourse.crossmodal.retrieval: chunked ranks equal a brute-force sort; recall@K, median rank, both directions."""

import pytest
import torch
import torch.nn.functional as F

from mmcourse.crossmodal.retrieval import (
    format_recall_table,
    median_rank,
    recall_at_k,
    retrieval_ranks,
    retrieval_report,
)


def brute_force_ranks(q, g):
    """Rank of item i for query i by sorting every row of the full similarity matrix."""
    s = F.normalize(q, dim=-1) @ F.normalize(g, dim=-1).T
    order = s.argsort(dim=1, descending=True, stable=True)
    return (order == torch.arange(len(q))[:, None]).float().argmax(1) + 1


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_chunked_ranks_equal_brute_force(chunk):
    g = torch.Generator().manual_seed(1)
    q, gal = torch.randn(50, 6, generator=g), torch.randn(50, 6, generator=g)
    gal[:25] = q[:25] + 0.3 * gal[:25]  # half the pairs are close, so ranks spread out
    torch.testing.assert_close(retrieval_ranks(q, gal, chunk=chunk), brute_force_ranks(q, gal))


def test_recall_and_median_rank_by_hand():
    ranks = torch.tensor([1, 2, 6, 11, 1])
    r = recall_at_k(ranks, (1, 5, 10))
    assert [float(r[k]) for k in (1, 5, 10)] == pytest.approx([0.4, 0.6, 0.8])
    assert float(median_rank(ranks)) == 2.0
    ranks = retrieval_ranks(torch.eye(4), torch.eye(4))
    assert ranks.tolist() == [1, 1, 1, 1]


def test_report_both_directions_and_table():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(40, 8, generator=g)
    b = a.clone()
    b[:10] = torch.randn(10, 8, generator=g)  # the first 10 captions are wrong
    rep = retrieval_report(a, b, names=("image", "text"), chunk=16)
    assert set(rep) == {"image→text", "text→image"}
    for d in rep.values():
        assert set(d) == {"R@1", "R@5", "R@10", "MedR"}
        assert 0.75 <= d["R@1"] <= d["R@5"] <= d["R@10"] <= 1.0
        assert d["MedR"] == 1.0
    # directions differ in general: check text→image against brute force with roles swapped
    ranks = brute_force_ranks(b, a)
    assert rep["text→image"]["R@5"] == pytest.approx(float((ranks <= 5).float().mean()))
    table = format_recall_table(rep)
    assert table.splitlines()[0] == "| direction | R@1 | R@5 | R@10 | MedR |" and "image→text" in table


def test_random_embeddings_are_at_chance():
    g = torch.Generator().manual_seed(0)
    rep = retrieval_report(torch.randn(1000, 16, generator=g), torch.randn(1000, 16, generator=g), chunk=300)
    assert rep["image→text"]["R@10"] < 0.03  # chance is 1%
    assert 350 < rep["image→text"]["MedR"] < 650


def test_bad_input():
    with pytest.raises(ValueError, match="batch sizes differ"):
        retrieval_ranks(torch.randn(5, 4), torch.randn(6, 4))
    with pytest.raises(ValueError, match="dimensions differ"):
        retrieval_report(torch.randn(5, 4), torch.randn(5, 3))
    with pytest.raises(ValueError, match="chunk"):
        retrieval_ranks(torch.randn(5, 4), torch.randn(5, 4), chunk=0)
    with pytest.raises(ValueError, match="positive"):
        recall_at_k(torch.tensor([1, 2]), (0,))


def test_ten_thousand_squared_in_chunks():
    """10,000 × 10,000 similarities (400 MB as one float matrix) are scored 500 rows at a time."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(10_000, 16, generator=g)
    noisy = z + 0.05 * torch.randn(10_000, 16, generator=g)
    ranks = retrieval_ranks(z, noisy, chunk=500)
    assert ranks.shape == (10_000,) and ranks.dtype == torch.int64
    assert float((ranks == 1).float().mean()) > 0.95
