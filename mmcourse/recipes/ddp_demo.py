"""A data-parallel run of the course's multimodal model through the ordinary ``fit`` (chapter 13).

One machine, N processes (GPUs, or CPU processes with gloo)::

    torchrun --nproc_per_node 2 -m mmcourse.recipes.ddp_demo --epochs 2 --checkpoint /tmp/ddp.pt

Several machines: the same command on each, with ``--nnodes M --node_rank i --rdzv_endpoint HOST:PORT``.
``fit`` reads ``RANK``/``WORLD_SIZE`` from torchrun, joins the process group, gives each rank its slice of every
global batch, all-reduces metrics and lets rank 0 write the checkpoint; ``--resume`` continues a run.
"""

from __future__ import annotations

import argparse

from mmcourse.engine.distributed import cleanup, current
from mmcourse.engine.evaluation import evaluate
from mmcourse.engine.loop import fit
from mmcourse.recipes.step_bench import world_model
from mmcourse.runtime import profile


def main(argv: list[str] | None = None) -> dict[str, float]:
    from mmcourse.data.world import world_splits

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256, help="global batch (split across ranks)")
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--modalities", default="image,text")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    args = p.parse_args(argv)
    P = profile()
    mods = tuple(m for m in args.modalities.split(",") if m)
    splits = world_splits(args.n_train or P.n_train, P.n_val, P.n_test, seed=P.seed, modalities=mods)
    model = world_model(splits, P.width)  # every rank builds it; DDP copies rank 0's weights to the others
    hist = fit(model, splits.train, splits.val, epochs=args.epochs, batch_size=args.batch_size, lr=2e-3,
               checkpoint=args.checkpoint, resume=args.checkpoint if args.resume else None, seed=P.seed)
    result = evaluate(model, splits.test)
    info = current()
    if info.is_main:
        print(f"world size {info.world}: {len(hist)} epochs, val acc {hist.last.get('val_acc', float('nan')):.3f}, "
              f"test acc {result['acc']:.3f}")
    cleanup()
    return result


if __name__ == "__main__":
    main()
