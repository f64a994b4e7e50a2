"""Notebooks stay within their quick-profile time budget on one CPU thread (measured during the nbval run)."""

from collections import defaultdict

from records import read_jsonl

# design.md: about 45 s (book), 30 s (solutions), 10 s (exercises); the hard limit allows 1.5x for a busy machine
BUDGET = {"book": 45.0, "solutions": 30.0, "exercises": 10.0}
SLACK = 1.5
# Known over the 45 s target (issue 17 stays open until they fit): their asserted comparisons need several seeds
# at full length (issue 16) — chapter 11's colour-helps-size gain (+3.5 points, seed SD 2.6) vanishes at 12
# epochs instead of 20 (-2.2 ± 3.0, measured). Hard limits in seconds, about 1.25x the slower of two fresh-clone
# runs of 2026-12-02 on the 2-core machine (which differed by up to 12 %): 11: 98.9/98.5 s, 08: 88.4/98.9 s,
# 09: 84.9/71.9 s, 10: 74.2/70.0 s, 05: 61.4/68.2 s. A notebook slower than that still fails. Chapter 12 joined
# on 2026-12-02 with post 003's independent/joint/fusion comparison and the loop inside budget_curve (issues 16,
# 17): 61.5 s under two workers. Chapter 09 with its new sections (the loop inside compare_fusions, attention
# maps, learning curves, early fusion and weight sharing on AV-digits): 85.8 s under two workers, 97.6 s alone.
# Its fusion table runs two seeds in quick since 2026-12-02 (issue 16): 82 s alone on the idle machine.
KNOWN_OVER = {"book/11_multitask.ipynb": 125.0, "book/08_audio_video_encoders.ipynb": 125.0,
              "book/09_fusion.ipynb": 120.0, "book/10_crossmodal.ipynb": 93.0,
              "book/05_residual_networks.ipynb": 85.0, "book/12_transfer.ipynb": 80.0,
              # the 05.lesion experiment (4 epochs of a plain and a residual net): 14.0 and 15.7 s in two runs
              "exercises/05_residual_networks.ipynb": 20.0}


def limit(notebook: str) -> float:
    """Seconds a notebook may take: its folder's budget times SLACK, or its KNOWN_OVER limit."""
    return KNOWN_OVER.get(notebook, BUDGET[notebook.split("/")[0]] * SLACK)


def test_every_notebook_within_budget(records_dir):
    seconds: dict[str, float] = defaultdict(float)
    for rec in read_jsonl(records_dir, "durations-*.jsonl"):
        seconds[rec["notebook"]] += rec["seconds"]
    assert seconds, "no notebook durations were recorded"
    over = {nb: f"{s:.0f} s > {limit(nb):.0f} s" for nb, s in sorted(seconds.items()) if s > limit(nb)}
    report = "\n".join(f"{s:7.1f} s  {nb}" for nb, s in sorted(seconds.items(), key=lambda kv: -kv[1]))
    print(report)
    assert not over, f"notebooks over their time budget: {over}\n{report}"
