"""Analysis: calibration (ch. 2), the one-call fusion comparison, robustness and missing-modality sweeps
(ch. 9), and colour-blind-safe plotting helpers used across the book."""

from mmcourse.analysis.calibration import expected_calibration_error, fit_temperature, plot_reliability
from mmcourse.analysis.compare import FusionComparison, compare_fusions
from mmcourse.analysis.plots import PALETTE, use_palette
from mmcourse.analysis.robustness import missing_modality_eval, noise_sweep, permutation_importance, plot_missing

__all__ = ["expected_calibration_error", "fit_temperature", "plot_reliability", "FusionComparison",
           "compare_fusions", "PALETTE", "use_palette", "missing_modality_eval", "noise_sweep",
           "permutation_importance", "plot_missing"]
