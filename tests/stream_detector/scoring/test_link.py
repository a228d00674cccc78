"""The logistic link against scipy, over the whole float range, without warnings."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import expit, logit

from stream_detector.scoring.link import clipped_logit, sigmoid


@given(st.floats(allow_nan=False, allow_infinity=True))
def test_sigmoid_matches_expit_to_relative_precision(z: float) -> None:
    expected = expit(z)
    got = sigmoid(np.array([z]))[0]
    assert 0.0 <= got <= 1.0
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=0)


@given(st.floats(0.0, 1.0), st.sampled_from([1e-6, 1e-3, 0.25]))
def test_clipped_logit_is_the_logit_of_the_clipped_probability(p: float, eps: float) -> None:
    expected = logit(min(max(p, eps), 1.0 - eps))
    np.testing.assert_allclose(clipped_logit(np.array([p]), eps)[0], expected, rtol=1e-12)
