"""Wrong answers for chapter 09's checks (gated fusion with missing modalities, the full weight of low-rank
fusion, late fusion, missing modalities, the source post's caption model, where a faint sound overtakes the
caption)."""

import torch
from torch import nn

from . import Mutant


def _masked_gmu(feats, present, proj, gate, *, zero=True, before=True, nan_to_num=True, sorted_cols=True):
    names = sorted(feats)
    cols = names if sorted_cols else list(feats)
    keep = {m: present[:, cols.index(m)] for m in names}  # [B] per modality
    xs = [feats[m] * keep[m].unsqueeze(1) if zero else feats[m] for m in names]
    mask = torch.stack([keep[m] for m in names], dim=1)  # [B, M]
    h = torch.stack([torch.tanh(proj[m](x)) for m, x in zip(names, xs)], dim=1)  # [B, M, D]
    scores = gate(torch.cat(xs, dim=-1)).view(h.shape)
    if before:
        g = scores.masked_fill(~mask.unsqueeze(-1), float("-inf")).softmax(1)
        g = g.nan_to_num(0.0) if nan_to_num else g
    else:
        g = scores.softmax(1) * mask.unsqueeze(-1)
    return (g * h).sum(1)


def masked_gmu_nan(feats, present, proj, gate):  # softmax over all -inf left as NaN
    return _masked_gmu(feats, present, proj, gate, nan_to_num=False)


def masked_gmu_after_softmax(feats, present, proj, gate):  # gates zeroed after the softmax, not renormalised
    return _masked_gmu(feats, present, proj, gate, before=False)


def masked_gmu_unzeroed(feats, present, proj, gate):  # missing features still reach the gate
    return _masked_gmu(feats, present, proj, gate, zero=False)


def masked_gmu_dict_order(feats, present, proj, gate):  # present's columns read in the dict's order
    return _masked_gmu(feats, present, proj, gate, sorted_cols=False)


def masked_gmu_ignores_present(feats, present, proj, gate):  # the book's gated_forward, unchanged
    return _masked_gmu(feats, torch.ones_like(present), proj, gate)


def lmf_second_slowest(f_1, f_2):
    return torch.einsum("rio,rjo->oji", f_1, f_2).flatten(1)


def lmf_no_rank_sum(f_1, f_2):
    return torch.einsum("rio,rjo->roij", f_1, f_2).flatten(2)


def lmf_first_rank_only(f_1, f_2):
    return torch.einsum("io,jo->oij", f_1[0], f_2[0]).flatten(1)


def lmf_mean_over_rank(f_1, f_2):
    return torch.einsum("rio,rjo->oij", f_1, f_2).flatten(1) / f_1.shape[0]


def lmf_transposed(f_1, f_2):
    return torch.einsum("rio,rjo->ijo", f_1, f_2).flatten(0, 1)


def late_mean_of_logits(logits, present):
    names = sorted(logits)
    w = torch.stack([present[m].float() if present is not None and m in present else torch.ones(len(logits[m]))
                     for m in names])
    z = torch.stack([logits[m] for m in names])
    return ((w.unsqueeze(-1) * z).sum(0) / w.sum(0).unsqueeze(-1)).softmax(-1)


def late_ignores_present(logits, present):
    return torch.stack([v.softmax(-1) for v in logits.values()]).mean(0)


def late_divides_by_all(logits, present):
    names = sorted(logits)
    w = torch.stack([present[m].float() if present is not None and m in present else torch.ones(len(logits[m]))
                     for m in names])
    probs = torch.stack([logits[m].softmax(-1) for m in names])
    return (w.unsqueeze(-1) * probs).sum(0) / len(names)


def _accuracy(model, x, present, targets, task):
    model.eval()
    with torch.no_grad():
        return float((model(x, present)[task].argmax(-1) == targets[task]).float().mean())


def acc_zeroes_without_present(model, inputs, targets, drop, task):
    x = {m: torch.zeros_like(v) if m in drop else v for m, v in inputs.items()}
    return _accuracy(model, x, None, targets, task)


def acc_zeroes_in_place(model, inputs, targets, drop, task):
    for m in drop:
        inputs[m].zero_()
    present = {m: torch.zeros(len(targets[task]), dtype=torch.bool) for m in drop} or None
    return _accuracy(model, inputs, present, targets, task)


def acc_returns_tensor(model, inputs, targets, drop, task):
    x = {m: torch.zeros_like(v) if m in drop else v for m, v in inputs.items()}
    present = {m: torch.zeros(len(targets[task]), dtype=torch.bool) for m in drop} or None
    model.eval()
    with torch.no_grad():
        return (model(x, present)[task].argmax(-1) == targets[task]).float().mean()


MUTANTS = {
    "09.masked_gated_fusion": {"NaN for all-missing": Mutant(masked_gmu_nan, "nan"),
                               "masked after the softmax": Mutant(masked_gmu_after_softmax, "before the softmax"),
                               "missing features not zeroed": Mutant(masked_gmu_unzeroed, "zeros"),
                               "columns in dict order": Mutant(masked_gmu_dict_order, "sorted"),
                               "present ignored": Mutant(masked_gmu_ignores_present, "every modality missing")},
    "09.lmf_full_weight": {"second modality slowest": Mutant(lmf_second_slowest, "first modality's index slowest"),
                           "no sum over the rank": Mutant(lmf_no_rank_sum, "sum over the rank"),
                           "first rank only": Mutant(lmf_first_rank_only, "sum over all r"),
                           "mean over the rank": Mutant(lmf_mean_over_rank, "not their mean"),
                           "[P, out]": Mutant(lmf_transposed, "[out, (d_1+1)(d_2+1)]")},
    "09.late_fusion_combine": {"mean of logits": late_mean_of_logits,
                               "ignores present": Mutant(late_ignores_present, "missing modalities"),
                               "divides by every modality": late_divides_by_all},
    "09.missing_modality_eval": {"zeroes without present": Mutant(acc_zeroes_without_present, "present"),
                                 "zeroes the caller's inputs": Mutant(acc_zeroes_in_place, "in place"),
                                 "returns a tensor": Mutant(acc_returns_tensor, "float")},
}


# --- 09.fix_caption_model ---------------------------------------------------------------------------------------

class _PostLayers(nn.Module):
    """The post's layers, as the notebook's PostCaptionModel holds them."""

    def __init__(self, vocab_size, n_classes=10, dim=32):
        super().__init__()
        from mmcourse.analysis.fast_encoders import BagOfWordsEncoder, TinyCNN

        self.net = TinyCNN(3, dim)
        self.rnn = BagOfWordsEncoder(vocab_size, dim)
        self.classifier = nn.Linear(2 * dim, n_classes)


_TEXTS = torch.randint(1, 40, (64, 12), generator=torch.Generator().manual_seed(0))  # captions set once


class GlobalCaptions(_PostLayers):  # the post's bug, ReLU removed: captions from outside the model
    def forward(self, inputs, present=None):
        return {"shape": self.classifier(torch.cat((self.net(inputs["image"]), self.rnn(_TEXTS)), 1))}


class FirstCallCaptions(_PostLayers):  # "fixed" by keeping the captions of the first batch it saw
    def forward(self, inputs, present=None):
        if not hasattr(self, "texts"):
            self.texts = inputs["text"].clone()
        texts = self.texts[: len(inputs["image"])]
        return {"shape": self.classifier(torch.cat((self.net(inputs["image"]), self.rnn(texts)), 1))}


class ReluOnLogits(_PostLayers):  # captions fixed, the post's Classifier kept
    def forward(self, inputs, present=None):
        fused = torch.cat((self.net(inputs["image"]), self.rnn(inputs["text"])), 1)
        return {"shape": torch.relu(self.classifier(fused))}


class TextDetached(_PostLayers):  # the caption features cut off from the gradient
    def forward(self, inputs, present=None):
        fused = torch.cat((self.net(inputs["image"]), self.rnn(inputs["text"]).detach()), 1)
        return {"shape": self.classifier(fused)}


class TextFirst(_PostLayers):
    def forward(self, inputs, present=None):
        fused = torch.cat((self.rnn(inputs["text"]), self.net(inputs["image"])), 1)
        return {"shape": self.classifier(fused)}


class BatchMeanCaption(_PostLayers):  # one caption summary for the whole batch
    def forward(self, inputs, present=None):
        text = self.rnn(inputs["text"]).mean(0, keepdim=True).expand(len(inputs["image"]), -1)
        return {"shape": self.classifier(torch.cat((self.net(inputs["image"]), text), 1))}


class RenamedClassifier(_PostLayers):  # the post's Classifier module kept, with its fc inside
    def __init__(self, vocab_size, n_classes=10, dim=32):
        super().__init__(vocab_size, n_classes, dim)
        self.classifier = nn.Sequential()
        self.classifier.add_module("fc", nn.Linear(2 * dim, n_classes))

    def forward(self, inputs, present=None):
        fused = torch.cat((self.net(inputs["image"]), self.rnn(inputs["text"])), 1)
        return {"shape": self.classifier(fused)}


# --- 09.modality_crossover --------------------------------------------------------------------------------------

def crossover_last_caption_win():  # the last dropout at which the caption still wins
    return 0.6


def crossover_caption_gone():  # "only when the caption never names the shape"
    return 1.0


def crossover_theory():  # (1 - p) + p / 10 = 0.3 at p = 7/9, not a dropout of the sweep
    return 7 / 9


def crossover_as_text():
    return "0.9"


def crossover_as_int_percent():
    return 90


MUTANTS.update({
    "09.fix_caption_model": {"captions from a global": Mutant(GlobalCaptions, "inputs['text']"),
                             "the first batch's captions kept": Mutant(FirstCallCaptions, "never reach"),
                             "ReLU on the logits": Mutant(ReluOnLogits, "relu"),
                             "text features detached": Mutant(TextDetached, "gradient"),
                             "text features first": Mutant(TextFirst, "image features first"),
                             "one caption for the batch": Mutant(BatchMeanCaption, "its own caption"),
                             "classifier.fc": Mutant(RenamedClassifier, "net, rnn, classifier")},
    "09.modality_crossover": {"the caption's last win": Mutant(crossover_last_caption_win, "still ahead"),
                              "only without any shape word": Mutant(crossover_caption_gone, "already wins earlier"),
                              "the theoretical crossover": Mutant(crossover_theory, "one of the dropouts"),
                              "a string": Mutant(crossover_as_text, "a float"),
                              "a percentage": Mutant(crossover_as_int_percent, "a float")},
})
