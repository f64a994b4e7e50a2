"""Wrong answers for chapter 09's checks (gated fusion, tensor fusion, late fusion, missing modalities, the
source post's caption model, where a faint sound overtakes the caption)."""

import torch
from torch import nn

from . import Mutant


def gmu_gate_swapped(x_a, x_b, w_a, w_b, w_z):
    z = torch.sigmoid(torch.cat([x_a, x_b], dim=-1) @ w_z.T)
    return (1 - z) * torch.tanh(x_a @ w_a.T) + z * torch.tanh(x_b @ w_b.T)


def gmu_no_tanh(x_a, x_b, w_a, w_b, w_z):
    z = torch.sigmoid(torch.cat([x_a, x_b], dim=-1) @ w_z.T)
    return z * (x_a @ w_a.T) + (1 - z) * (x_b @ w_b.T)


def gmu_gate_order(x_a, x_b, w_a, w_b, w_z):
    z = torch.sigmoid(torch.cat([x_b, x_a], dim=-1) @ w_z.T)
    return z * torch.tanh(x_a @ w_a.T) + (1 - z) * torch.tanh(x_b @ w_b.T)


def fuse_without_ones(a, b):
    return (a.unsqueeze(2) * b.unsqueeze(1)).flatten(1)


def fuse_b_outer_a(a, b):
    a1 = torch.cat([a, a.new_ones(a.shape[0], 1)], dim=1)
    b1 = torch.cat([b, b.new_ones(b.shape[0], 1)], dim=1)
    return (b1.unsqueeze(2) * a1.unsqueeze(1)).flatten(1)


def fuse_ones_first(a, b):
    a1 = torch.cat([a.new_ones(a.shape[0], 1), a], dim=1)
    b1 = torch.cat([b.new_ones(b.shape[0], 1), b], dim=1)
    return (a1.unsqueeze(2) * b1.unsqueeze(1)).flatten(1)


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
    "09.gated_fusion": {"gate swapped": gmu_gate_swapped, "no tanh": gmu_no_tanh, "gate input order": gmu_gate_order},
    "09.tensor_fusion": {"no appended ones": Mutant(fuse_without_ones, "[1, 12]"), "b outer a": fuse_b_outer_a,
                         "ones first": fuse_ones_first},
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
