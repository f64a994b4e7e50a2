"""Cross-modal learning (chapter 9): contrastive alignment, retrieval metrics, zero-shot classification,
cross-modal transfer and caption generation. One idea per module; the common names are re-exported here."""

from mmcourse.crossmodal.caption_metrics import attribute_accuracy, attribute_word_ids
from mmcourse.crossmodal.captioning import CaptionDecoder, Captioner, train_captioner
from mmcourse.crossmodal.contrastive import ContrastiveModel, LearnableTemperature, info_nce, train_contrastive
from mmcourse.crossmodal.decoding import beam_search, greedy_decode
from mmcourse.crossmodal.frozen_text import PrecomputedFeatures, SentenceEmbedder, caption_embeddings
from mmcourse.crossmodal.retrieval import recall_at_k, retrieval_ranks, retrieval_report
from mmcourse.crossmodal.transfer import cross_modal_transfer, fit_embedding_classifier
from mmcourse.crossmodal.zeroshot import ZeroShotClassifier, class_prompts

__all__ = [
    "CaptionDecoder", "Captioner", "ContrastiveModel", "LearnableTemperature", "PrecomputedFeatures",
    "SentenceEmbedder", "ZeroShotClassifier", "attribute_accuracy", "attribute_word_ids", "beam_search",
    "caption_embeddings", "class_prompts", "cross_modal_transfer",
    "fit_embedding_classifier", "greedy_decode", "info_nce", "recall_at_k", "retrieval_ranks",
    "retrieval_report", "train_captioner", "train_contrastive",
]
