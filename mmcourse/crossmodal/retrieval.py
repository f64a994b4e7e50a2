"""Cross-modal retrieval metrics (chapter 10): recall@K and median rank, in both directions, on the device.

Query ``i`` of one modality should find item ``i`` of the other. The rank of that correct item is the number
of gallery items scored strictly higher, plus one (ties count in the query's favour). Similarities are
computed a chunk of queries at a time, so 10,000 × 10,000 scores never sit in memory at once, and only the
final handful of numbers travel to the host.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mmcourse.crossmodal.contrastive import check_pair


def retrieval_ranks(queries: Tensor, gallery: Tensor, *, chunk: int = 1024, normalize: bool = True) -> Tensor:
    """1-based rank ``[N]`` (int64, on the input's device) of gallery item ``i`` for query ``i``.

    Args:
        queries, gallery: ``[N, D]`` embeddings, row ``i`` of each a matching pair.
        chunk: queries scored at once (memory ``chunk × N``).
        normalize: compare by cosine similarity (L2-normalise first); False uses raw dot products.
    """
    check_pair(queries, gallery, "retrieval embeddings")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if normalize:
        queries, gallery = F.normalize(queries, dim=-1), F.normalize(gallery, dim=-1)
    n = queries.shape[0]
    ranks = torch.empty(n, dtype=torch.int64, device=queries.device)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        sims = queries[lo:hi] @ gallery.T  # [c, N]
        rows = torch.arange(hi - lo, device=queries.device)
        correct = sims[rows, rows + lo]  # [c] score of the right item
        ranks[lo:hi] = (sims > correct[:, None]).sum(1) + 1
    return ranks


def recall_at_k(ranks: Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[int, Tensor]:
    """``{k: fraction of queries whose correct item is in the top k}`` as 0-d tensors (no host sync)."""
    if len(ks) == 0 or any(k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {list(ks)}")
    return {k: (ranks <= k).float().mean() for k in ks}


def median_rank(ranks: Tensor) -> Tensor:
    """The median 1-based rank (lower median for an even count), a 0-d tensor."""
    if ranks.numel() == 0:
        raise ValueError("median_rank got no ranks")
    return ranks.float().median()


def retrieval_report(a: Tensor, b: Tensor, *, names: Sequence[str] = ("image", "text"),
                     ks: Sequence[int] = (1, 5, 10), chunk: int = 1024) -> dict[str, dict[str, float]]:
    """Recall@K and median rank both ways: ``{"image→text": {"R@1": .., "R@5": .., "R@10": .., "MedR": ..},
    "text→image": {...}}``. ``a`` and ``b`` are ``[N, D]`` paired embeddings of the two ``names``."""
    if len(names) != 2:
        raise ValueError(f"names must be two modality names, got {list(names)}")
    out: dict[str, dict[str, Tensor]] = {}
    for (qn, q), (gn, g) in (((names[0], a), (names[1], b)), ((names[1], b), (names[0], a))):
        ranks = retrieval_ranks(q, g, chunk=chunk)
        row = {f"R@{k}": v for k, v in recall_at_k(ranks, ks).items()}
        row["MedR"] = median_rank(ranks)
        out[f"{qn}→{gn}"] = row
    stacked = torch.stack([v for row in out.values() for v in row.values()]).tolist()  # one host sync
    it = iter(stacked)
    return {d: {m: next(it) for m in row} for d, row in out.items()}


def format_recall_table(report: dict[str, dict[str, float]]) -> str:
    """A Markdown table of a :func:`retrieval_report` (recalls in %, median rank as a number)."""
    metrics = list(next(iter(report.values())))
    lines = ["| direction | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for d, row in report.items():
        cells = [f"{v:.1f}" if m == "MedR" else f"{100 * v:.1f}%" for m, v in row.items()]
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
