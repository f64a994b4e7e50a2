"""Run a chapter notebook as a script, with no Jupyter: the chapter step of ``make gpu-check``.

GPU machines for this course may have torch but no jupyter, nbclient, IPython or ipywidgets, and no network.
So the notebook's JSON is read directly and its code cells are executed one by one in one namespace, as a
kernel would: cells tagged ``colab-install`` are skipped, any other IPython magic (``%``/``!``) fails clearly,
``IPython.display`` and ``ipywidgets`` get small stand-ins when they are missing (``display`` prints;
``interact`` calls the function once with each widget's initial value, as Jupyter does when the cell runs),
and ``glue`` records every number the prose quotes. A failing ``assert`` is a failed claim. After every cell
the progress goes to the JSON file, so a chapter stopped at its time budget keeps its finished cells.

``python -m mmcourse.gpu_check.chapters NOTEBOOK --json OUT`` runs one; ``--export FILE`` writes the script.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
import time
import traceback
import types
from pathlib import Path
from typing import Any

SKIP_TAGS = ("colab-install",)
FIXTURE = "gpu_check_fixture.ipynb"  # the dry run's stand-in chapter, written by :func:`write_fixture`

# A chapter in miniature, using every notebook feature the runner must handle (seconds on a CPU).
FIXTURE_CELLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ('import sys\n\nif "google.colab" in sys.modules:\n    %pip install -q mmcourse', ("colab-install",)),
    ("import ipywidgets as widgets\nimport matplotlib.pyplot as plt\nimport torch\n"
     "from IPython.display import Markdown, display\n\nfrom mmcourse.engine import fit\n"
     "from mmcourse.engine.bench import Result, Setting\nfrom mmcourse.models import Batch\n"
     "from mmcourse.notebook import glue\nfrom mmcourse.runtime import profile\n\nP = profile()", ()),
    ("x = torch.randn(64, 4)\ny = (x[:, 0] > 0).long()\nmodel = torch.nn.Linear(4, 2)\n"
     "class Wrap(torch.nn.Module):\n    def __init__(self, m):\n        super().__init__()\n        self.m = m\n"
     "    def forward(self, inputs, present=None):\n        return {'y': self.m(inputs['x'])}\n"
     "history = fit(Wrap(model), Batch({'x': x}, {'y': y}), Batch({'x': x}, {'y': y}), epochs=3, lr=0.1, "
     "batch_size=16, progress=False, device='cpu')\nfig = history.plot()\nplt.show()", ()),
    ("widgets.interact(lambda lr: glue('fx_lr', lr), lr=widgets.FloatLogSlider(value=0.01, min=-4, max=0))\n"
     "display(Markdown(f\"final loss {history.last['train_loss']:.3f}\"))\n"
     "glue('fx_acc', f\"{history.last['val_acc']:.1%}\")", ()),
    ("results = [Result(Setting('plain', plain=True), samples_per_s=[100.0, 110.0], final_acc=[0.5, 0.5], "
     "epoch_secs=[[1.0, 1.0]] * 2, epoch_accs=[[0.4, 0.5]] * 2, target_acc=0.45)]", ()),
    ("raise ValueError('a cell tagged raises-exception may fail')", ("raises-exception",)),
    ("assert history['train_loss'][-1] < history['train_loss'][0], 'the fixture did not learn'", ()),
)


def write_fixture(path: str | os.PathLike) -> Path:
    """Write the dry run's miniature chapter (:data:`FIXTURE_CELLS`) as a notebook without outputs."""
    cells = [{"cell_type": "markdown", "metadata": {}, "source": "# The gpu-check fixture"}]
    cells += [{"cell_type": "code", "metadata": {"tags": list(tags)}, "source": src, "outputs": [],
               "execution_count": None} for src, tags in FIXTURE_CELLS]
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    Path(path).write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return Path(path)


def code_cells(path: str | os.PathLike) -> list[tuple[int, str, list[str]]]:
    """``(cell index, source, tags)`` of every code cell of a notebook, read from its JSON."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for i, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") != "code":
            continue
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        out.append((i, src, list(cell.get("metadata", {}).get("tags", []))))
    return out


def magic_lines(src: str) -> list[str]:
    """Lines that are IPython syntax rather than Python (``%magic``, ``!shell``, ``?help``)."""
    return [ln.strip() for ln in src.splitlines() if ln.lstrip().startswith(("%", "!", "?"))]


def export_script(path: str | os.PathLike) -> str:
    """The notebook as a plain Python script (one ``# %% [cell N]`` section per code cell); raises
    ``ValueError`` naming the cell if a cell that runs uses IPython-only syntax."""
    parts = [f"# Exported from {Path(path).name} by mmcourse.gpu_check.chapters: code cells only.\n"]
    for i, src, tags in code_cells(path):
        if any(t in SKIP_TAGS for t in tags):
            parts.append(f"# %% [cell {i}] skipped ({', '.join(tags)})\n")
            continue
        bad = magic_lines(src)
        if bad:
            raise ValueError(f"{Path(path).name} cell {i} uses IPython syntax {bad[0]!r}: a script cannot run it; "
                             f"tag the cell {SKIP_TAGS[0]!r} or write it in Python")
        compile(src, f"{path}#cell{i}", "exec")  # a syntax error names the cell
        parts.append(f"# %% [cell {i}]\n{src}\n")
    return "\n".join(parts)


class _Widget:
    """Stand-in for an ipywidgets control: keeps ``value`` (its initial value) and ignores the rest."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.value = kwargs.get("value", args[0] if args else None)
        self.kwargs = kwargs

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def _initial(control: Any, default: Any) -> Any:
    """The value ipywidgets would start a control at: a widget's ``value``; for an abbreviation, the function's
    default where it has one, else the middle of a ``(min, max[, step])`` range or the first of the options."""
    if isinstance(control, _Widget):
        return control.value
    if default is not inspect.Parameter.empty:
        return default
    if isinstance(control, tuple) and len(control) in (2, 3):
        lo, hi = control[:2]
        return (lo + hi) // 2 if isinstance(lo, int) and isinstance(hi, int) else (lo + hi) / 2
    if isinstance(control, list) and control:
        first = control[0]
        return first[1] if isinstance(first, tuple) and len(first) == 2 else first
    if isinstance(control, dict) and control:
        return next(iter(control.values()))
    return control


def _interact(fn: Any = None, **controls: Any) -> Any:
    """Call ``fn`` once with each control's initial value (Jupyter's first draw of the widget)."""
    if fn is None:
        return lambda f: _interact(f, **controls)
    params = inspect.signature(fn).parameters
    fn(**{k: _initial(v, params[k].default if k in params else inspect.Parameter.empty)
          for k, v in controls.items()})
    return fn


def install_stubs() -> list[str]:
    """Put stand-ins for ``IPython.display`` and ``ipywidgets`` into ``sys.modules`` where the real ones are
    missing; returns the names stubbed."""
    stubbed = []
    try:
        import IPython.display  # noqa: F401
    except ImportError:
        ipy, disp = types.ModuleType("IPython"), types.ModuleType("IPython.display")

        class _Text:
            def __init__(self, data: Any = "", *a: Any, **k: Any):
                self.data = data

            def __repr__(self) -> str:
                return str(self.data)

        def display(*objs: Any, **_kwargs: Any) -> None:
            for o in objs:
                print(o)

        disp.display = display
        disp.Markdown = disp.HTML = disp.Latex = disp.Image = disp.SVG = _Text
        disp.clear_output = lambda *a, **k: None
        ipy.display = disp
        # matplotlib and tqdm ask IPython whether they run inside it: answer as IPython ≥ 8.24 does in a script
        ipy.get_ipython, ipy.version_info = (lambda: None), (8, 24, 0)
        sys.modules.update({"IPython": ipy, "IPython.display": disp})
        stubbed.append("IPython.display")
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        w = types.ModuleType("ipywidgets")
        w.interact = w.interact_manual = _interact
        def control(name: str) -> type:  # every control class: IntSlider, FloatLogSlider, Dropdown, …
            if name.startswith("__"):
                raise AttributeError(name)  # __file__, __path__, …: tools that inspect modules must see none
            return _Widget

        w.__getattr__ = control
        sys.modules["ipywidgets"] = w
        stubbed.append("ipywidgets")
    return stubbed


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a glued value (numbers and strings as they are, anything else as its repr)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return value if not (isinstance(value, float) and not math.isfinite(value)) else str(value)
    try:
        return float(value)  # numpy and 0-d torch scalars
    except (TypeError, ValueError):
        return repr(value)[:200]


def _collect(ns: dict[str, Any]) -> dict[str, Any]:
    """Training histories and benchmark results left in the chapter's namespace (for RESULTS rows)."""
    from mmcourse.engine.bench import Result
    from mmcourse.engine.history import History

    out: dict[str, Any] = {"histories": {}, "bench": {}}
    for name, v in ns.items():
        if isinstance(v, History):
            out["histories"][name] = [{k: _plain(x) for k, x in row.items()} for row in v.rows]
        elif isinstance(v, list) and v and all(isinstance(r, Result) for r in v):
            out["bench"][name] = [r.to_dict() for r in v]
    return out


def run_notebook(path: str | os.PathLike, out: Path) -> dict[str, Any]:
    """Execute the notebook's code cells in order; record per-cell seconds, glued values and the outcome."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import mmcourse.display as display_helpers
    import mmcourse.notebook as notebook_helpers

    report: dict[str, Any] = {"notebook": str(path), "status": "running", "cells": [], "glue": {},
                              "stubs": install_stubs(), "profile": os.environ.get("MMCOURSE_PROFILE", "")}

    def glue(name: str, value: Any, display: bool = False) -> Any:
        report["glue"][name] = _plain(value)
        return value

    def glue_text(name: str, value: Any, spec: str | None = None, *, code: bool = False) -> None:
        report["glue"][name] = display_helpers.format_value(value, spec)

    notebook_helpers.glue = glue  # `from mmcourse.notebook import glue` in the chapter picks this up
    display_helpers.glue_text = glue_text  # and `from mmcourse.display import glue_text` this
    ns: dict[str, Any] = {"__name__": "__main__", "__file__": str(path)}

    def save() -> None:
        out.write_text(json.dumps(report, indent=1, default=str))

    start = time.perf_counter()
    for i, src, tags in code_cells(path):
        if any(t in SKIP_TAGS for t in tags):
            continue
        t0 = time.perf_counter()
        try:
            if magic_lines(src):
                raise SyntaxError(f"IPython syntax in a cell that runs: {magic_lines(src)[0]!r}")
            exec(compile(src, f"{path}#cell{i}", "exec"), ns)  # noqa: S102 - running the course's own notebook
        except BaseException as e:  # noqa: BLE001 - recorded, then the chapter stops like a kernel would
            ok = "raises-exception" in tags and isinstance(e, Exception)
            report["cells"].append({"cell": i, "seconds": time.perf_counter() - t0, "ok": ok})
            if not ok:
                kind = "claim failed" if isinstance(e, AssertionError) else (
                    "missing package" if isinstance(e, ImportError) else "error")
                report.update(status="failed", failure={"cell": i, "kind": kind, "type": type(e).__name__,
                                                        "message": str(e)[:2000],
                                                        "traceback": traceback.format_exc()[-4000:]})
                break
        else:
            report["cells"].append({"cell": i, "seconds": time.perf_counter() - t0, "ok": True})
        plt.close("all")
        report["seconds"] = time.perf_counter() - start
        save()
    if report["status"] == "running":
        report["status"] = "passed"
    report["seconds"] = time.perf_counter() - start
    report.update(_collect(ns))
    save()
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebook", type=Path)
    p.add_argument("--json", type=Path, help="run it and write the report here")
    p.add_argument("--export", type=Path, help="write the notebook as a script here (no run)")
    args = p.parse_args(argv)
    if args.export:
        args.export.write_text(export_script(args.notebook))
    if args.json:
        report = run_notebook(args.notebook, args.json)
        print(f"{args.notebook}: {report['status']} in {report['seconds']:.1f} s", flush=True)
        return 0 if report["status"] == "passed" else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
