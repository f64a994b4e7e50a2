"""Plausible wrong answers ("mutants") for every graded check: each must fail its hidden test.

``tests/mutants/chNN.py`` holds ``MUTANTS = {"NN.name": {"what is wrong": answer, ...}, ...}`` for chapter NN;
an answer is the learner's function or class, or a :class:`Mutant` that also names words the learner's
message must contain. ``tests/test_grading_mutants.py`` fails when a registered check has fewer than two
mutants or when any mutant passes.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Mutant:
    """A wrong answer and words (lower case) its failure message must contain, so the learner knows what to fix."""

    answer: Any
    says: str = ""
