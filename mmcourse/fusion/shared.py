"""Weight sharing across branches: one encoder applied to several inputs of the same modality (chapter 9).

The source posts share weights between branches that see the same kind of data (two images of a pair, a
query and a candidate caption). With ``MultimodalModel`` this needs no new machinery: put the *same* encoder
object under several input names. ``shared_encoders`` does that and says so in the model's printout;
parameters are stored (and counted, and updated) once, and the gradients of both branches add up in them.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class SharedEncoder(nn.Module):
    """A named view of a shared encoder: calls (and ``tokens``) go to ``encoder``; ``out_dim`` is its width."""

    def __init__(self, encoder: nn.Module, branch: str):
        super().__init__()
        self.encoder, self.branch = encoder, branch
        self.out_dim = getattr(encoder, "out_dim", None)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def tokens(self, x: Tensor) -> Tensor:
        if not hasattr(self.encoder, "tokens"):
            raise AttributeError(f"the shared encoder {type(self.encoder).__name__} of branch {self.branch!r} "
                                 "has no tokens(); use a fusion without uses_tokens")
        return self.encoder.tokens(x)

    def extra_repr(self) -> str:
        return f"branch={self.branch!r} (weights shared)"


def shared_encoders(encoder: nn.Module, names: Sequence[str]) -> dict[str, nn.Module]:
    """``{name: SharedEncoder(encoder, name)}`` for each input name: one set of weights for all of them."""
    if len(names) < 1 or len(set(names)) != len(names):
        raise ValueError(f"shared_encoders needs distinct input names, got {list(names)}")
    return {n: SharedEncoder(encoder, n) for n in names}
