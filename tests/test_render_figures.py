"""Figure descriptions that do not depend on the output format."""

from __future__ import annotations

import numpy as np

from renderers.figures import estimate_window


def test_eigenvalue_axis_frames_the_ground_truth_not_the_first_estimates():
    truth = np.array([0.0, 0.03, 0.07, 0.28, 0.37])
    low, high = estimate_window(truth)
    assert low < 0.0 and high > 0.37  # every ground-truth line is inside, with room
    assert high < 1.0  # an early estimate of 13 does not stretch the axis
    # a single eigenvalue still gets a visible window
    low, high = estimate_window(np.array([0.0]))
    assert low < 0.0 < high
