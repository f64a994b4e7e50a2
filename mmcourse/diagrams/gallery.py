"""Every diagram of the course by name (chapters 04–13), and ``write_gallery`` that renders them to files.

``python -m mmcourse.diagrams`` calls ``write_gallery``; ``tests/test_diagrams.py`` walks ``GALLERY``. A name is
the diagram's ``Diagram.name`` and its file name (``residual_block_pre.png``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from mmcourse.diagrams.attention import (
    multi_head_attention,
    patch_embedding,
    scaled_dot_product_attention,
    transformer_block,
)
from mmcourse.diagrams.blocks import batchnorm, residual_block
from mmcourse.diagrams.checks import layout_problems
from mmcourse.diagrams.diagram import Diagram
from mmcourse.diagrams.fusion import fusion_stages
from mmcourse.diagrams.fusion_modules import FUSION_DIAGRAMS
from mmcourse.diagrams.media import audio_front_end, video_convolutions
from mmcourse.diagrams.sequences import gru_cell, lstm_cell, unrolled_rnn
from mmcourse.diagrams.systems import full_system, shared_trunk, two_tower
from mmcourse.diagrams.training import training_step, transfer_recipes

PHONE_PX = 360  # CSS pixels across a phone held upright

GALLERY: dict[str, Callable[[], Diagram]] = {
    "batchnorm": batchnorm,
    "residual_block": partial(residual_block, pre_activation=False),
    "residual_block_pre": partial(residual_block, pre_activation=True),
    "unrolled_rnn": unrolled_rnn,
    "unrolled_rnn_bptt": partial(unrolled_rnn, bptt=True),
    "lstm_cell": lstm_cell,
    "gru_cell": gru_cell,
    "scaled_dot_product_attention": scaled_dot_product_attention,
    "multi_head_attention": multi_head_attention,
    "transformer_block": transformer_block,
    "transformer_block_post_norm": partial(transformer_block, pre_norm=False),
    "patch_embedding": patch_embedding,
    "audio_front_end": audio_front_end,
    "video_convolutions": video_convolutions,
    "fusion_stages": fusion_stages,
    **{f"fusion_{name}": fn for name, fn in FUSION_DIAGRAMS.items()},
    "two_tower_image_text": two_tower,
    "shared_trunk": shared_trunk,
    "transfer_recipes": transfer_recipes,
    "training_step": training_step,
    "full_system": full_system,
}


def write_gallery(out: str | Path, names: Iterable[str] | None = None, *, svg: bool = True, phone: bool = True
                  ) -> dict[str, list[str]]:
    """Render diagrams (all of ``GALLERY`` by default) into ``out`` as PNG (and SVG, and a phone-width PNG
    under ``out/phone``); return the layout problems of each, by name (empty lists when all is well)."""
    out = Path(out)
    (out / "phone").mkdir(parents=True, exist_ok=True)
    chosen = list(GALLERY) if names is None else list(names)
    unknown = sorted(set(chosen) - set(GALLERY))
    if unknown:
        raise KeyError(f"no diagram called {unknown}; the gallery has {', '.join(GALLERY)}")
    problems = {}
    for name in chosen:
        d = GALLERY[name]()
        problems[name] = layout_problems(d)
        d.save(out / f"{name}.png")
        if svg:
            d.save(out / f"{name}.svg")
        if phone:
            d.save(out / "phone" / f"{name}.png", dpi=PHONE_PX / d.size[0])
        d.close()
    return problems
