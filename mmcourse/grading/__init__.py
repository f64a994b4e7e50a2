"""Graded exercises: hidden-test checks (``check``), the exercise generator and the notebook grader."""

from mmcourse.grading.registry import CheckResult, check, checks_of_chapter, get_check, register, run_check

__all__ = ["CheckResult", "check", "checks_of_chapter", "get_check", "register", "run_check"]
