"""Diagrams of chapter 06: an RNN unrolled in time (with backprop through time), the LSTM and GRU cells.

They draw ``mmcourse.layers.rnn``: one affine map per input (``x W_ihᵀ + b_ih`` and ``h W_hhᵀ + b_hh``) whose
result is split in torch's gate order — LSTM ``i, f, g, o``; GRU ``r, z, n`` — and the reset gate of the GRU
scales the recurrent part ``h_n`` only, as in torch and cuDNN.
"""

from __future__ import annotations

from mmcourse.diagrams.core import Canvas
from mmcourse.diagrams.diagram import Diagram
from mmcourse.diagrams.style import TEXT
from mmcourse.palette import OKABE_ITO

GRAD = OKABE_ITO["vermillion"]


def unrolled_rnn(steps: int = 4, bptt: bool = False) -> Diagram:
    """An Elman RNN folded (a cell with a loop) and unrolled over ``steps`` time steps with shared weights.

    Args:
        steps: time steps to draw (2–4).
        bptt: also draw the gradient flowing back through time, from the loss at the last step to ``h_0``.
    """
    if not 2 <= steps <= 4:
        raise ValueError(f"steps must be between 2 and 4 to fit the page, got {steps}")
    c = Canvas(7.0, 3.6, "unrolled_rnn_bptt" if bptt else "unrolled_rnn")
    y = 1.55
    # folded: one cell with a loop
    c.box("fold", (0.55, y), "cell", w=0.62, h=0.5)
    c.box("fold_x", (0.55, y - 1.0), "$x_t$", kind_="data")
    c.box("fold_h", (0.55, y + 1.0), "$h_t$", kind_="data")
    c.arrow("fold_x", "fold")
    c.arrow(("fold", "top", -0.15), ("fold_h", "bottom", -0.15))
    c.arrow(("fold", "top", 0.15), ("fold", "right", 0.0), via=[(0.7, y + 0.5), (1.1, y + 0.5), (1.1, y)])
    c.text((1.14, y + 0.62), "$h_{t-1}$", ha="left", color=TEXT)
    c.text((1.55, y), "=", size=16, color=TEXT)
    x0, dx = 2.05, 1.02
    c.box("h0", (x0, y), "$h_0$", kind_="data")
    prev = "h0"
    for t in range(1, steps + 1):
        x = x0 + 0.1 + t * dx
        c.box(f"cell{t}", (x, y), "cell", w=0.62, h=0.5)
        c.box(f"x{t}", (x, y - 1.0), f"$x_{t}$", kind_="data")
        c.box(f"h{t}", (x, y + 1.0), f"$h_{t}$", kind_="data")
        c.arrow(f"x{t}", f"cell{t}")
        c.arrow(f"cell{t}", f"h{t}")
        c.arrow(prev, f"cell{t}", label=f"$h_{t - 1}$" if t > 1 else None, label_side="above")
        prev = f"cell{t}"
    if bptt:
        last = c[f"h{steps}"]
        c.box("loss", (last.x, y + 1.85), "loss", kind_="loss")
        c.arrow(f"h{steps}", "loss")
        c.arrow((last.x + 0.14, c["loss"].bottom), (last.x + 0.14, last.top), color=GRAD, ls="--",
                label=f"$\\partial L/\\partial h_{steps}$", label_side="right")
        c.arrow((last.x + 0.14, last.bottom), (last.x + 0.14, c[f"cell{steps}"].top), color=GRAD, ls="--")
        for t in range(steps, 0, -1):
            a = c[f"cell{t}"]
            b = c["h0"] if t == 1 else c[f"cell{t - 1}"]
            c.arrow((a.left, y - 0.17), (b.right, y - 0.17), color=GRAD, ls="--",
                    label=f"$\\partial L/\\partial h_{{{t - 1}}}$", label_side="below")
        c.text((3.4, y - 1.62), "backprop through time: the gradient flows back along the states,\n"
               "multiplied by the same $W_{hh}$ (and tanh′) at every step", color=GRAD, size=10)
    else:
        c.text((3.4, y - 1.62), "every cell: $h_t = \\tanh(x_t W_{ih}^\\top + b_{ih} + h_{t-1} W_{hh}^\\top + b_{hh})$"
               "\nwith the same weights $W_{ih}, W_{hh}, b_{ih}, b_{hh}$ at every step", color=TEXT, size=10)
    c.text((x0 + 0.1 + dx * steps / 2, y + 1.55),
           f"x: [B, T, I] → outputs $h_1 … h_{steps}$: [B, T, H]", mono=False)
    alt = (f"A recurrent network folded into one cell with a loop, and unrolled over {steps} steps: each step's "
           "cell reads the input x_t and the previous state h_(t-1) and outputs h_t, with the same weights at "
           "every step.")
    if bptt:
        alt += " Dashed arrows carry the gradient of the loss back through the chain of states to h_0."
    return c.finish(alt)


def lstm_cell() -> Diagram:
    """The LSTM cell: one affine map gives the gates i, f, g, o; the cell path c_{t−1} → ⊗ f → ⊕ i·g → c_t."""
    c = Canvas(6.4, 4.6, "lstm_cell")
    top, low = 3.55, 0.75
    xf, xi, xg, xo, xh = 1.75, 2.45, 3.15, 4.05, 4.85
    c.box("c_prev", (0.45, top), "$c_{t-1}$", kind_="data")
    c.box("h_prev", (0.45, low), "$h_{t-1}$", kind_="data")
    c.box("x", (1.55, 0.0), "$x_t$", kind_="data")
    c.box("gates", (3.0, low), "$x_t W_{ih}^\\top + b_{ih} + h_{t-1} W_{hh}^\\top + b_{hh}$", w=3.4)
    c.arrow("h_prev", "gates")
    c.arrow("x", ("gates", "bottom", 1.55 - 3.0))
    for name, xx, fn, lab in (("sf", xf, "σ", "f"), ("si", xi, "σ", "i"), ("sg", xg, "tanh", "g"),
                              ("so", xo, "σ", "o")):
        c.box(name, (xx, 1.65), fn, kind_="function", w=0.52 if fn == "tanh" else 0.4)
        c.arrow(("gates", "top", xx - 3.0), name, label=f"${lab}$", label_side="left")
    c.op("mul_f", (xf, top), "×")
    c.op("mul_ig", (xg, 2.6), "×")
    c.op("add", (xg, top), "+")
    c.arrow("c_prev", "mul_f")
    c.arrow("sf", "mul_f")
    c.arrow("si", "mul_ig", route="vh")
    c.arrow("sg", "mul_ig")
    c.arrow("mul_f", "add")
    c.arrow("mul_ig", "add")
    c.box("c_next", (6.0, top), "$c_t$", kind_="data")
    c.point("split", (xh, top), dot=True)
    c.arrow("add", "split", head="none")
    c.arrow("split", "c_next")
    c.box("tanh_c", (xh, 2.6), "tanh", kind_="function", w=0.52)
    c.op("mul_o", (xh, 1.65), "×")
    c.arrow("split", "tanh_c")
    c.arrow("tanh_c", "mul_o")
    c.arrow("so", "mul_o")
    c.box("h_next", (6.0, low), "$h_t$", kind_="data")
    c.arrow("mul_o", "h_next", route="vh")
    c.text((3.2, top + 0.55), "$c_t = \\sigma(f) \\odot c_{t-1} + \\sigma(i) \\odot \\tanh(g)$      "
           "$h_t = \\sigma(o) \\odot \\tanh(c_t)$", size=10, color=TEXT)
    c.text((3.4, low - 0.36), "[B, 4H], split in torch's order i, f, g, o;  c and h are [B, H]")
    c.text((1.05, top + 0.2), "cell state", italic=True)
    alt = ("The LSTM cell: x_t and h_(t-1) go through one affine map whose output is split into the gates "
           "i, f, g, o; the cell state c_(t-1) is multiplied by sigmoid(f) and added to sigmoid(i) times tanh(g) "
           "to give c_t, and h_t is sigmoid(o) times tanh(c_t).")
    return c.finish(alt)


def gru_cell() -> Diagram:
    """The GRU cell as torch computes it: r and z gates, n = tanh(i_n + r ⊙ h_n), h_t = (1 − z) ⊙ n + z ⊙ h."""
    c = Canvas(6.6, 4.8, "gru_cell")
    top = 3.7
    xz, xr, xn = 2.75, 3.75, 4.85
    c.box("h_prev", (0.45, top), "$h_{t-1}$", kind_="data")
    c.point("h_split", (1.15, top), dot=True)
    c.box("lin_h", (1.15, 2.45), "$h_{t-1} W_{hh}^\\top + b_{hh}$\n$= [h_r, h_z, h_n]$")
    c.box("lin_x", (1.15, 1.05), "$x_t W_{ih}^\\top + b_{ih}$\n$= [i_r, i_z, i_n]$")
    c.box("x", (1.15, -0.05), "$x_t$", kind_="data")
    c.text((1.15, 1.75), "the chunks feed the\ngates by their names")
    c.arrow("h_prev", "h_split", head="none")
    c.arrow("h_split", "lin_h")
    c.arrow("x", "lin_x")
    # gates: each ⊕ reads one chunk of each affine map
    for col, g in ((xz, "z"), (xr, "r")):
        c.op(f"add_{g}", (col, 0.55), "+")
        c.box(f"sig_{g}", (col, 1.3), "σ", kind_="function", w=0.4)
        c.arrow((col - 0.24, 0.05), f"add_{g}")
        c.arrow((col + 0.24, 0.05), f"add_{g}")
        c.text((col - 0.26, -0.08), f"$i_{g}$", color=TEXT, va="top")
        c.text((col + 0.26, -0.08), f"$h_{g}$", color=TEXT, va="top")
        c.arrow(f"add_{g}", f"sig_{g}")
    c.op("mul_r", (xn, 1.3), "×")
    c.arrow("sig_r", "mul_r", label="$r$", label_side="above")
    c.arrow((xn, 0.05), "mul_r")
    c.text((xn, -0.08), "$h_n$", color=TEXT, va="top")
    c.op("add_n", (xn, 1.92), "+")
    c.arrow("mul_r", "add_n")
    c.arrow((xn + 0.55, 1.92), "add_n")
    c.text((xn + 0.6, 1.92), "$i_n$", color=TEXT, ha="left")
    c.box("tanh_n", (xn, 2.52), "tanh", kind_="function", w=0.52)
    c.arrow("add_n", "tanh_n")
    c.op("mul_n", (xn, 3.15), "×")
    c.arrow("tanh_n", "mul_n", label="$n$", label_side="right")
    c.point("z_split", (xz, 3.15), dot=True)
    c.arrow("sig_z", "z_split", head="none", label="$z$", label_side="left")
    c.op("one_minus", (xr, 3.15), "1−", size=9)
    c.arrow("z_split", "one_minus")
    c.arrow("one_minus", "mul_n")
    c.op("mul_z", (xz, top), "×")
    c.arrow("z_split", "mul_z")
    c.op("add_h", (xn, top), "+")
    c.arrow("h_split", "mul_z")
    c.arrow("mul_z", "add_h")
    c.arrow("mul_n", "add_h")
    c.box("h_next", (6.2, top), "$h_t$", kind_="data")
    c.arrow("add_h", "h_next")
    c.text((3.4, top + 0.55), "$r = \\sigma(i_r + h_r)$   $z = \\sigma(i_z + h_z)$   "
           "$n = \\tanh(i_n + r \\odot h_n)$   $h_t = (1 - z) \\odot n + z \\odot h_{t-1}$", size=9.5, color=TEXT)
    alt = ("The GRU cell as torch computes it: x_t and h_(t-1) each go through an affine map split into three "
           "chunks; r = sigmoid(i_r + h_r), z = sigmoid(i_z + h_z), n = tanh(i_n + r times h_n), and "
           "h_t = (1 - z) times n + z times h_(t-1).")
    return c.finish(alt)
