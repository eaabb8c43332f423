"""The statistics against scipy and brute force."""

import numpy as np
import pytest
from scipy import linalg
from scipy.special import softmax
from scipy.stats import entropy

from bridgedit.evaluation import frechet_distance, kl_divergence, mmd2_polynomial


def _reference_frechet(a, b):
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s_a @ s_b).real
    return np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2 * root)


def test_frechet_matches_scipy_on_well_conditioned_sets():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 8))
    b = rng.normal(loc=0.5, scale=1.5, size=(400, 8)) @ rng.normal(size=(8, 8))
    assert frechet_distance(a, b) == pytest.approx(_reference_frechet(a, b), rel=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_is_real_and_non_negative_on_near_singular_covariances():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(10, 64))  # fewer samples than dimensions: rank-deficient covariances
    b = rng.normal(size=(12, 64))
    value = frechet_distance(a, b)
    assert isinstance(value, float) and np.isfinite(value) and value >= 0
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    low_rank = np.repeat(rng.normal(size=(20, 1)), 16, axis=1)  # covariance of rank 1
    assert frechet_distance(low_rank, low_rank + 1e-9) >= 0


def test_mmd2_matches_brute_force():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(7, 5)), rng.normal(loc=0.3, size=(9, 5))
    k = lambda x, y: (x @ y / 5 + 1) ** 3  # noqa: E731
    within_a = sum(k(a[i], a[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    within_b = sum(k(b[i], b[j]) for i in range(9) for j in range(9) if i != j) / (9 * 8)
    across = sum(k(a[i], b[j]) for i in range(7) for j in range(9)) / (7 * 9)
    assert mmd2_polynomial(a, b) == pytest.approx(within_a + within_b - 2 * across, rel=1e-10)
    same = rng.normal(size=(2000, 4))  # unbiased: near 0 for two samples of one distribution
    assert abs(mmd2_polynomial(same[:1000], same[1000:])) < 0.05


def test_kl_matches_scipy_and_is_paired():
    rng = np.random.default_rng(3)
    ref, gen = rng.normal(size=(6, 10)), rng.normal(size=(6, 10))
    expected = np.mean([entropy(softmax(r), softmax(g)) for r, g in zip(ref, gen)])
    assert kl_divergence(ref, gen) == pytest.approx(expected, rel=1e-10)
    assert kl_divergence(ref, ref) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="pairs clips"):
        kl_divergence(ref, gen[:5])
