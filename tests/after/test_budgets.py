"""Notebooks stay within their quick-profile time budget on one CPU thread (measured during the nbval run)."""

from collections import defaultdict

from records import read_jsonl

# design.md: about 45 s (book), 30 s (solutions), 10 s (exercises); the hard limit allows 1.5x for a busy machine
BUDGET = {"book": 45.0, "solutions": 30.0, "exercises": 10.0}
SLACK = 1.5


def test_every_notebook_within_budget(records_dir):
    seconds: dict[str, float] = defaultdict(float)
    for rec in read_jsonl(records_dir, "durations-*.jsonl"):
        seconds[rec["notebook"]] += rec["seconds"]
    assert seconds, "no notebook durations were recorded"
    over = {nb: f"{s:.0f} s > {BUDGET[nb.split('/')[0]] * SLACK:.0f} s" for nb, s in sorted(seconds.items())
            if s > BUDGET[nb.split("/")[0]] * SLACK}
    report = "\n".join(f"{s:7.1f} s  {nb}" for nb, s in sorted(seconds.items(), key=lambda kv: -kv[1]))
    print(report)
    assert not over, f"notebooks over their time budget: {over}\n{report}"
