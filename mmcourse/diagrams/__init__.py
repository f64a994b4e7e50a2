"""Architecture diagrams drawn by code (matplotlib), one function per diagram (chapters 04–13).

Each function returns a :class:`Diagram` whose ``alt`` text says in words what it shows; a notebook cell that
ends in ``residual_block(pre_activation=True)`` displays it as an ``<img>`` carrying that alt text, on an
opaque white background that stays readable in the book's dark theme. ``python -m mmcourse.diagrams`` writes
every diagram as PNG and SVG (``GALLERY`` lists them) and reports layout problems. The package sits on top:
it imports matplotlib, numpy and ``mmcourse.palette`` only, and nothing in the library imports it.

Colours mean the same in every diagram (see ``mmcourse.diagrams.style``): a modality has its colour (image
blue, text orange, audio green, video purple); learned layers are pale yellow, fixed functions grey,
operations white circles, losses vermillion, frozen layers grey and hatched, the training engine dashed.
"""

from mmcourse.diagrams.attention import (
    multi_head_attention,
    patch_embedding,
    scaled_dot_product_attention,
    transformer_block,
)
from mmcourse.diagrams.blocks import batchnorm, residual_block
from mmcourse.diagrams.checks import layout_problems
from mmcourse.diagrams.core import Canvas
from mmcourse.diagrams.diagram import Diagram
from mmcourse.diagrams.fusion import fusion_stages
from mmcourse.diagrams.fusion_modules import fusion_module
from mmcourse.diagrams.gallery import GALLERY, write_gallery
from mmcourse.diagrams.media import audio_front_end, video_convolutions
from mmcourse.diagrams.sequences import gru_cell, lstm_cell, unrolled_rnn
from mmcourse.diagrams.systems import full_system, shared_trunk, two_tower
from mmcourse.diagrams.training import training_step, transfer_recipes

__all__ = [
    "GALLERY", "Canvas", "Diagram", "audio_front_end", "batchnorm", "full_system", "fusion_module", "fusion_stages",
    "gru_cell", "layout_problems", "lstm_cell", "multi_head_attention", "patch_embedding", "residual_block",
    "scaled_dot_product_attention", "shared_trunk", "training_step", "transfer_recipes", "transformer_block",
    "two_tower", "unrolled_rnn", "video_convolutions", "write_gallery",
]
