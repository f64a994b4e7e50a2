"""mmcourse.authoring.book_rules: the fixer rewrites old notebooks to the book's rules; the checker finds breaks."""

import copy

import nbformat

from mmcourse.authoring.book_rules import plotting_cells, problems, rewrite_cells, rewrite_code, rewrite_markdown
from mmcourse.authoring.notebook_tools import install_source


def test_rewrite_code_glue_and_tables():
    src = ('from IPython.display import Markdown, display\nfrom mmcourse.notebook import glue\n'
           '_ = glue("k", f"{x:.1%}")\nglue("n", n)\ndisplay(Markdown("| a |\\n|---|\\n" + "\\n".join(\n'
           '    rows)))\n')
    new, needs = rewrite_code(src)
    assert 'glue_text("k", f"{x:.1%}")' in new and 'glue_text("n", n)' in new and "_ =" not in new
    assert 'show_table("| a |\\n|---|\\n" + "\\n".join(\n    rows))\n' in new
    assert "mmcourse.notebook" not in new
    assert needs == {"glue_text", "show_table"}


def test_rewrite_cells_fixes_imports_and_is_idempotent():
    cells = [nbformat.v4.new_code_cell("import torch\nfrom IPython.display import Markdown, display\n\n"
                                       "from mmcourse import profile\nfrom mmcourse.notebook import glue\n"
                                       "from mmcourse.engine import fit"),
             nbformat.v4.new_code_cell("display(Markdown(t))\nglue('a', 1)"),
             nbformat.v4.new_code_cell("display(x)")]
    once = rewrite_cells(copy.deepcopy(cells))
    head = once[0]["source"]
    assert "from mmcourse.display import glue_text, show_table\nfrom mmcourse.engine import fit" in head
    assert "from IPython.display import display" in head  # still used by the third cell; Markdown is gone
    assert once[1]["source"] == "show_table(t)\nglue_text('a', 1)"
    assert rewrite_cells(copy.deepcopy(once)) == once


def test_a_role_taken_out_of_inline_code_keeps_its_code_font():
    cells = [nbformat.v4.new_markdown_cell("the best, `{glue:}`best``, reaches {glue:}`acc`"),
             nbformat.v4.new_code_cell('glue("best", best)\nglue("acc", f"{a:.1%}")')]
    out = rewrite_cells(cells)
    assert out[0]["source"] == "the best, {glue}`best`, reaches {glue}`acc`"
    assert 'glue_text("best", best, code=True)' in out[1]["source"]
    assert 'glue_text("acc", f"{a:.1%}")\n' in out[1]["source"] + "\n"


def test_rewrite_markdown_takes_roles_out_of_inline_code():
    md = "best, `{glue:}`ch09_best_uni``, reaches {glue:}`ch09_acc` and {glue:any}`x`; `code` stays"
    assert rewrite_markdown(md) == "best, {glue}`ch09_best_uni`, reaches {glue}`ch09_acc` and {glue}`x`; `code` stays"


def test_problems_finds_each_break():
    nb = {"cells": [
        {"cell_type": "markdown", "source": "x `{glue:}`k`` and {glue:text}`j`\n```bash\n" + "z" * 89 + "\n```",
         "metadata": {}},
        {"cell_type": "code", "source": "glue('k', 1)\ndisplay(Markdown(t))\n" + "y = 1" + " " * 90, "metadata": {}},
        {"cell_type": "code", "source": "plt.plot([1, 2])\nplt.show()", "metadata": {}},
        {"cell_type": "code", "source": "res.plot()", "metadata": {"mystnb": {"image": {"alt": "short"}}}},
        {"cell_type": "code", "source": "fig, ax = subplots()",
         "metadata": {"mystnb": {"image": {"alt": "A bar chart of accuracy per method, fusion highest."}}}},
    ]}
    found = "\n".join(problems(nb, "t"))
    for needle in ("inside inline code", "not {glue:text}", "glue_text, not glue()", "show_table",
                   "characters", "a code block line", "t cell 2 draws a figure", "t cell 3 draws a figure"):
        assert needle in found, f"{needle!r} not reported:\n{found}"
    assert "cell 4" not in found
    assert problems({"cells": nb["cells"][4:]}) == []


def test_plotting_cells_follow_functions_defined_in_the_notebook():
    cells = [{"cell_type": "code", "source": "def draw(ax=None):\n    plt.imshow(x)\n\n\ndef helper():\n    return 1"},
             {"cell_type": "code", "source": "draw()"},
             {"cell_type": "code", "source": "helper()\n%timeit helper()"},
             {"cell_type": "code", "source": "widgets.interact(draw, k=(1, 3))"}]
    assert plotting_cells(cells) == [1, 3]


def test_install_cell_fits_the_column():
    src = install_source("https://github.com/some-organisation-with-a-long-name/mmcourse-fork")
    assert max(len(line) for line in src.splitlines()) <= 88
    assert "%pip install" in src and "{repo}" in src
