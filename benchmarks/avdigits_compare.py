"""AV-digits, leave-one-speaker-out, through the public API: every fusion with the library's own encoders.

The library side of ``benchmarks/RESULTS.md`` ("AV-digits: the library against a plain script"); the plain side
is ``benchmarks/avdigits_reference.py``, on the same folds, data and epochs. For each held-out speaker,
``compare_fusions`` trains image alone, audio alone and every fusion (3 seeds), then concatenation and the best
fusion again with modality dropout, which are also scored with each modality missing at test time.

    python benchmarks/avdigits_compare.py --source ../shared/data/fsdd-5-speakers.tar.gz --out results.json

Encoders: ``SmallCNN(dim, width=w)`` (4×4 pooling grid) and ``Augmented(AudioCNN(dim, width=w), SpecAugment())``
(4 frequency bands × 4 time stretches, time and frequency masking while training) — the library's defaults.
Results are written to ``--out`` after every fold, so a long run can be read (or resumed) before it ends.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from mmcourse.analysis.compare import compare_fusions
from mmcourse.analysis.robustness import missing_modality_eval
from mmcourse.data.augment import SpecAugment
from mmcourse.data.avdigits import avdigits_split, read_recordings
from mmcourse.encoders import AudioCNN, Augmented, SmallCNN
from mmcourse.fusion import fusion_names

FUSIONS = [n for n in fusion_names() if n != "identity"]


def make_encoders(dim: int, width: int):
    """Fresh library encoders for AV-digits (what the chapters and the walk-through use)."""
    return lambda: {"image": SmallCNN(dim, width=width),
                    "audio": Augmented(AudioCNN(dim, width=width), SpecAugment())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default=None, help="FSDD archive or folder (default: the shipped 500-clip subset)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--speakers", nargs="+", default=None, help="held-out speakers (default: all)")
    p.add_argument("--methods", nargs="+", default=["only:image", "only:audio", "late", *FUSIONS])
    p.add_argument("--dropout-methods", nargs="+", default=["concat", "cross_attention"],
                   help="trained again with modality dropout 0.3 and scored with each modality missing")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", default="avdigits_compare.json")
    args = p.parse_args()
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {"args": vars(args), "folds": {}}
    rec = read_recordings(args.source)
    kw = dict(seeds=args.seeds, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, weight_decay=1e-4,
              device="cpu", fusion_kwargs={"tensor": {"out_dim": args.dim},
                                           "low_rank_tensor": {"out_dim": args.dim, "rank": 8}})
    for spk in args.speakers or rec.speaker_names():
        fold = results["folds"].setdefault(spk, {"acc": {}, "train_s": {}, "dropout": {}})
        train, test = avdigits_split(rec, spk)
        for method in args.methods:  # one call per method: a long run saves (and resumes) method by method
            if method in fold["acc"]:
                continue
            res = compare_fusions([method], train, test, make_encoders(args.dim, args.width), **kw)
            fold["acc"][method], fold["train_s"][method] = res.accs[method], res.rows[0]["train_s"]
            out.write_text(json.dumps(results, indent=1))
            print(f"{spk} {method}: {statistics.fmean(res.accs[method]):.1%}", flush=True)
        for method in args.dropout_methods:
            if method in fold["dropout"]:
                continue
            md = compare_fusions([method], train, test, make_encoders(args.dim, args.width), modality_dropout=0.3,
                                 **kw)
            models = getattr(md, "models_per_seed", {}).get(method) or [md.models[method]]
            fold["dropout"][method] = [{"+".join(k) or "none": v for k, v in missing_modality_eval(m, test).items()}
                                       for m in models]
            out.write_text(json.dumps(results, indent=1))
            print(f"{spk} {method} + modality dropout: {fold['dropout'][method]}", flush=True)
    print(summary(results))


def summary(results: dict) -> str:
    """A markdown table: mean ± std over folds × seeds per method, and the missing-modality scores."""
    folds = results["folds"]
    methods = list(next(iter(folds.values()))["acc"])
    lines = [f"{len(folds)} held-out speakers: {', '.join(folds)}", "", "| method | accuracy (mean ± std) |",
             "|---|---|"]
    for m in methods:
        a = [x for f in folds.values() for x in f["acc"][m]]
        lines.append(f"| {m} | {statistics.fmean(a):.1%} ± {statistics.stdev(a) if len(a) > 1 else 0:.1%} |")
    drop = next(iter(folds.values()))["dropout"]
    for m in drop:
        for case in drop[m][0]:
            a = [r[case] for f in folds.values() for r in f["dropout"][m]]
            lines.append(f"| {m} + modality dropout, missing: {case} | {statistics.fmean(a):.1%} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
