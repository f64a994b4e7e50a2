"""Wrong answers for chapter 12's checks (gradual unfreezing, a linear probe, layer-wise learning-rate
decay, training a head on a frozen backbone, probe or fine-tune)."""

import torch
import torch.nn.functional as F
from torch import nn

from . import Mutant


def _set_stages(model, on, off, frozen_rest):
    under = lambda n, s: n == s or n.startswith(s + ".")  # noqa: E731
    for n, p in model.named_parameters():
        if any(under(n, s) for s in on):
            p.requires_grad_(True)
        elif frozen_rest or any(under(n, s) for s in off):
            p.requires_grad_(False)


def unfreeze_from_the_input(model, stages, epoch):  # reads the list from the input up
    thawed = stages[::-1][: epoch + 1]
    _set_stages(model, thawed, [], True)
    return thawed


def unfreeze_one_late(model, stages, epoch):  # epoch 0 trains nothing: the head waits an epoch
    thawed = stages[:epoch]
    _set_stages(model, thawed, [], True)
    return thawed


def unfreeze_newest_only(model, stages, epoch):  # only the stage thawed this epoch trains
    thawed = stages[epoch: epoch + 1] or stages[-1:]
    _set_stages(model, thawed, [], True)
    return stages[: epoch + 1]


def unfreeze_never_refreezes(model, stages, epoch):  # only turns requires_grad on
    thawed = stages[: epoch + 1]
    _set_stages(model, thawed, [], False)
    return thawed


def unfreeze_stages_only(model, stages, epoch):  # freezes the later stages, leaves the embeddings as they were
    thawed = stages[: epoch + 1]
    _set_stages(model, thawed, stages[epoch + 1:], False)
    return thawed


def unfreeze_returns_nothing(model, stages, epoch):
    _set_stages(model, stages[: epoch + 1], [], True)


def _train(x, y, num_classes, steps, lr):
    head = nn.Linear(x.shape[1], num_classes)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(head(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head


def probe_no_standardisation(x, y, num_classes, steps=200, lr=0.1):
    return _train(x, y, num_classes, steps, lr)


def probe_not_folded(x, y, num_classes, steps=200, lr=0.1):
    mean, std = x.mean(0), x.std(0).clamp_min(1e-3)
    return _train((x - mean) / std, y, num_classes, steps, lr)  # expects standardised input, gets raw features


def probe_global_statistics(x, y, num_classes, steps=200, lr=0.1):
    mean, std = x.mean(), x.std()
    head = _train((x - mean) / std, y, num_classes, steps, lr)
    out = nn.Linear(x.shape[1], num_classes)
    with torch.no_grad():
        out.weight.copy_(head.weight / std)
        out.bias.copy_(head.bias - (head.weight / std).sum(1) * mean)
    return out


def _llrd(model, lr, decay, depth_of):
    names = [n for n, _ in model.named_parameters()]
    blocks = sorted({n.split(".")[1] for n in names if n.startswith("blocks.")}, key=int)
    groups: dict[int, list] = {}
    for n, p in model.named_parameters():
        groups.setdefault(depth_of(n, blocks), []).append(p)
    return [{"params": ps, "lr": lr * decay**d} for d, ps in sorted(groups.items(), reverse=True)]


def _depth(n, blocks, embed=1, top=0, embeddings=("cls", "embed", "pos")):
    head = n.split(".")[0]
    if head in embeddings:
        return len(blocks) + embed
    if head == "blocks":
        return len(blocks) - blocks.index(n.split(".")[1])
    return top


def llrd_string_order(model, lr, decay):  # sorts the block indices as strings: 0, 1, 10, 11, 2, ...
    names = [n for n, _ in model.named_parameters()]
    blocks = sorted({n.split(".")[1] for n in names if n.startswith("blocks.")})
    groups: dict[int, list] = {}
    for n, p in model.named_parameters():
        groups.setdefault(_depth(n, blocks), []).append(p)
    return [{"params": ps, "lr": lr * decay**d} for d, ps in groups.items()]


def llrd_embeddings_with_block0(model, lr, decay):
    return _llrd(model, lr, decay, lambda n, b: _depth(n, b, embed=0))


def llrd_cls_on_top(model, lr, decay):  # only embed.* and pos.* count as embeddings
    return _llrd(model, lr, decay, lambda n, b: _depth(n, b, embeddings=("embed", "pos")))


def llrd_head_decayed(model, lr, decay):  # the top is one step below lr
    return _llrd(model, lr, decay, lambda n, b: _depth(n, b) + 1)


def llrd_from_the_bottom(model, lr, decay):  # the embeddings get lr, the head the smallest rate
    return _llrd(model, lr, decay, lambda n, b: len(b) + 1 - _depth(n, b))


def llrd_group_per_parameter(model, lr, decay):  # right rates, but a group for every tensor
    return [{"params": [p], **{k: v for k, v in g.items() if k != "params"}}
            for g in _llrd(model, lr, decay, _depth) for p in g["params"]]


def head_buggy(backbone, head, x, y, steps=100, lr=0.01):  # the notebook's bug: the backbone in train mode
    backbone.requires_grad_(False)
    model = nn.Sequential(backbone, head).train()
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def head_no_grad_only(backbone, head, x, y, steps=100, lr=0.01):  # no autograd, but batch norm still updates
    with torch.no_grad():
        feats = backbone(x)
    _fit_head(head, feats, y, steps, lr)


def _fit_head(head, feats, y, steps, lr):
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(head(feats), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def head_eval_all_params(backbone, head, x, y, steps=100, lr=0.01):  # eval(), but the optimiser gets everything
    model = nn.Sequential(backbone, head)
    backbone.eval()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def head_no_restore(backbone, head, x, y, steps=100, lr=0.01):
    backbone.eval()
    with torch.no_grad():
        feats = backbone(x)
    _fit_head(head, feats, y, steps, lr)


def head_batchnorm_only(backbone, head, x, y, steps=100, lr=0.01):  # batch norm in eval, dropout still on
    was = backbone.training
    for m in backbone.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.eval()
    backbone.requires_grad_(False)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(head(backbone(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    backbone.train(was)


def winners_probe_everywhere():
    return {"related": "probe", "unrelated": "probe"}


def winners_finetune_everywhere():
    return {"related": "finetune", "unrelated": "finetune"}


def winners_swapped():
    return {"related": "finetune", "unrelated": "probe"}


MUTANTS = {
    "12.gradual_unfreezing": {"from the input up": Mutant(unfreeze_from_the_input, "from the head down"),
                               "one epoch late": Mutant(unfreeze_one_late, "at epoch 0 the head"),
                               "newest stage only": Mutant(unfreeze_newest_only, "keep training"),
                               "never re-freezes": Mutant(unfreeze_never_refreezes, "still be frozen"),
                               "embeddings left trainable": Mutant(unfreeze_stages_only, "belong to no stage"),
                               "returns nothing": Mutant(unfreeze_returns_nothing, "return the stages")},
    "12.linear_probe": {"no standardisation": Mutant(probe_no_standardisation, "standardise"),
                        "standardisation not folded": probe_not_folded,
                        "one mean and std for all features": Mutant(probe_global_statistics, "standardise")},
    "12.llrd": {"block indices sorted as strings": Mutant(llrd_string_order, "as a number"),
                "embeddings at block 0's rate": Mutant(llrd_embeddings_with_block0, "embeddings"),
                "cls counted as the top": Mutant(llrd_cls_on_top, "cls, embed"),
                "the head decayed too": Mutant(llrd_head_decayed, "full lr"),
                "decay counted from the bottom": Mutant(llrd_from_the_bottom, "full lr"),
                "a group per tensor": Mutant(llrd_group_per_parameter, "one group per depth")},
    "12.train_head_frozen": {"the bug itself": Mutant(head_buggy, "running statistics"),
                             "no_grad without eval": Mutant(head_no_grad_only, "running statistics"),
                             "eval, but every parameter optimised": Mutant(head_eval_all_params, "parameters"),
                             "left in eval mode": Mutant(head_no_restore, "mode you found"),
                             "dropout left on": Mutant(head_batchnorm_only, "dropout")},
    "12.probe_or_finetune": {"probe everywhere": Mutant(winners_probe_everywhere, "first layer"),
                             "fine-tune everywhere": winners_finetune_everywhere, "swapped": winners_swapped},
}
