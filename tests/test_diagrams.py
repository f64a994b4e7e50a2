"""mmcourse.diagrams: every diagram renders, has alt text, fits the column and has a clean layout; the layout
checks catch what they claim to; the package stays on top of the library."""

import ast
import io
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from mmcourse.diagrams import (
    GALLERY,
    Canvas,
    Diagram,
    fusion_module,
    layout_problems,
    patch_embedding,
    shared_trunk,
    two_tower,
    unrolled_rnn,
)
from mmcourse.diagrams.__main__ import main
from mmcourse.diagrams.fusion_modules import FUSION_DIAGRAMS

ROOT = Path(__file__).resolve().parents[1]


def _pixels(d: Diagram, dpi: float = 100) -> np.ndarray:  # the figure's own dpi: text layouts are reused
    return mpimg.imread(io.BytesIO(d.png(dpi=dpi)), format="png")  # [H, W, 4] floats in [0, 1]


@pytest.mark.parametrize("name", list(GALLERY))
def test_every_diagram_renders_clean_with_alt_text(name):
    d = GALLERY[name]()
    assert d.name == name, f"GALLERY key {name!r} builds a diagram named {d.name!r}"
    assert 80 <= len(d.alt) <= 700 and d.alt.rstrip().endswith("."), f"{name}: alt text {d.alt!r}"
    assert layout_problems(d) == [], f"{name}: {layout_problems(d)}"
    px = _pixels(d)
    assert px.shape[-1] == 4 and px[..., 3].min() == 1.0, f"{name}: the PNG is not opaque"
    assert np.allclose(px[0, 0, :3], 1.0) and np.allclose(px[-1, -1, :3], 1.0), f"{name}: background not white"
    d.close()


def test_variants_and_bad_arguments():
    assert fusion_module("concat").name == "fusion_concat"  # every module is drawn in the gallery test
    assert all(GALLERY[f"fusion_{name}"] is fn for name, fn in FUSION_DIAGRAMS.items())
    with pytest.raises(ValueError, match="late fusion is a model"):
        fusion_module("late")
    with pytest.raises(ValueError, match="no diagram for fusion 'gated_typo'"):
        fusion_module("gated_typo")
    with pytest.raises(ValueError, match="steps must be between 2 and 4"):
        unrolled_rnn(steps=5)
    with pytest.raises(ValueError, match="draw 1–4 tasks"):
        shared_trunk(("a", "b", "c", "d", "e"))
    with pytest.raises(ValueError, match="unknown modality 'smell'"):
        two_tower(("smell", "text"))
    for d in (two_tower(("audio", "text"), batch=3), shared_trunk(("label",), ("image",)),
              patch_embedding(cls_token=False), patch_embedding(grid=2, cls_token=False),
              unrolled_rnn(steps=2)):
        assert layout_problems(d) == [], f"{d.name}: {layout_problems(d)}"


def test_every_fusion_the_registry_builds_has_a_diagram():
    from mmcourse.fusion.registry import fusion_names

    drawable = set(fusion_names()) - {"identity"}  # identity passes one modality through: nothing to draw
    assert drawable == set(FUSION_DIAGRAMS), f"fusions without a diagram: {sorted(drawable - set(FUSION_DIAGRAMS))}"


def test_notebook_display_carries_the_alt_text():
    d = GALLERY["residual_block_pre"]()
    bundle = d._repr_mimebundle_()
    html = bundle["text/html"]
    assert html.startswith('<img src="data:image/png;base64,') and 'class="mmcourse-diagram"' in html
    assert 'alt="A pre-activation residual block' in html and "max-width:100%" in html
    assert bundle["image/png"] and "pre-activation" in bundle["text/plain"]
    assert d.svg().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match="needs alt text"):
        Diagram(d.fig, "  ", "x")


def _canvas() -> Canvas:
    c = Canvas(4.0, 2.0, "t")
    c.box("a", (1.0, 1.0), "a box")
    c.box("b", (3.0, 1.0), "b")
    return c


def test_layout_checks_catch_each_problem():
    assert layout_problems(_canvas().finish("A clean test canvas with two boxes.", trim=False)) == []
    c = _canvas()
    c.text((1.0, 1.6), "one label")
    c.text((1.05, 1.6), "another label")
    assert any("overlap" in p for p in layout_problems(c.finish("x", trim=False)))
    c = _canvas()
    c.box("c", (2.0, 1.0), "a box far too narrow for this label", w=0.5)
    assert any("sticks out of its box 'c'" in p for p in layout_problems(c.finish("x", trim=False)))
    c = _canvas()
    c.box("m", (2.0, 1.0), "m")
    c.arrow("a", "b")
    assert any("runs through box 'm'" in p for p in layout_problems(c.finish("x", trim=False)))
    c = _canvas()
    c.text((3.9, 1.8), "leaving the page", ha="left")
    assert any("leaves the figure" in p for p in layout_problems(c.finish("x", trim=False)))
    c = _canvas()
    c.text((2.0, 0.3), "tiny", size=6)
    assert any("smaller than 9" in p for p in layout_problems(c.finish("x", trim=False)))
    c = Canvas(7.5, 1.0, "wide")
    c.box("w", (3.75, 0.5), "wide", w=7.3)
    assert any("wide" in p for p in layout_problems(c.finish("x")))
    d = _canvas().finish("x", trim=False)
    d.fig.patch.set_alpha(0.0)
    assert any("not opaque" in p for p in layout_problems(d))
    with pytest.raises(ValueError, match="off the side"):
        _canvas().arrow("a", ("b", "top", 2.0))
    with pytest.raises(ValueError, match="already has a node called 'a'"):
        _canvas().box("a", (0.5, 0.5), "again")


def test_gallery_cli_writes_png_svg_and_phone_width(tmp_path):
    assert main(["--out", str(tmp_path), "residual_block", "fusion_concat"]) == 0
    for name in ("residual_block", "fusion_concat"):
        assert (tmp_path / f"{name}.png").stat().st_size > 5000
        assert (tmp_path / f"{name}.svg").read_text().lstrip().startswith("<?xml")
        phone = mpimg.imread(tmp_path / "phone" / f"{name}.png")
        assert abs(phone.shape[1] - 360) <= 1, f"phone copy is {phone.shape[1]} px wide"
    with pytest.raises(KeyError, match="no diagram called"):
        main(["--out", str(tmp_path), "nonsense"])


ALLOWED = {"matplotlib", "numpy", "mmcourse.palette", "mmcourse.diagrams", "IPython", "__future__"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_diagrams_sit_on_top_of_the_library():
    import sys

    stdlib = set(sys.stdlib_module_names)
    for f in sorted((ROOT / "mmcourse" / "diagrams").glob("*.py")):
        for mod in _imports(f):
            top = mod.split(".")[0]
            ok = top in stdlib or any(mod == a or mod.startswith(a + ".") for a in ALLOWED)
            assert ok, f"{f.name} imports {mod}; mmcourse.diagrams may import only matplotlib, numpy, mmcourse.palette"
    for f in sorted((ROOT / "mmcourse").rglob("*.py")):
        if "diagrams" in f.relative_to(ROOT / "mmcourse").parts:
            continue
        assert not any(m.startswith("mmcourse.diagrams") for m in _imports(f)), f"{f} imports mmcourse.diagrams"
