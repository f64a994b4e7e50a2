"""Cross-modal learning (chapter 10): contrastive alignment, retrieval metrics, zero-shot classification,
cross-modal transfer and caption generation. Models speak the dict contract and come with their losses
(``InfoNCELoss``, ``CaptionLoss``), so ``fit`` trains them. One idea per module; common names re-exported."""

from mmcourse.crossmodal.caption_metrics import attribute_accuracy, attribute_word_ids
from mmcourse.crossmodal.captioning import CaptionDecoder, Captioner, CaptionLoss, memory_data
from mmcourse.crossmodal.contrastive import ContrastiveModel, InfoNCELoss, LearnableTemperature, info_nce
from mmcourse.crossmodal.decoding import beam_search, greedy_decode
from mmcourse.crossmodal.frozen_text import PrecomputedFeatures, SentenceEmbedder, caption_embeddings
from mmcourse.crossmodal.retrieval import recall_at_k, retrieval_ranks, retrieval_report
from mmcourse.crossmodal.transfer import cross_modal_transfer, fit_embedding_classifier
from mmcourse.crossmodal.zeroshot import ZeroShotClassifier, class_prompts

__all__ = [
    "CaptionDecoder", "CaptionLoss", "Captioner", "ContrastiveModel", "InfoNCELoss", "LearnableTemperature",
    "PrecomputedFeatures", "SentenceEmbedder", "ZeroShotClassifier", "attribute_accuracy", "attribute_word_ids",
    "beam_search", "caption_embeddings", "class_prompts", "cross_modal_transfer", "fit_embedding_classifier",
    "greedy_decode", "info_nce", "memory_data", "recall_at_k", "retrieval_ranks", "retrieval_report",
]
