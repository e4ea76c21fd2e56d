"""The elementwise LKJ priors and normal density equal PyMC's and SciPy's distributions."""

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from scipy import stats

from alliance.correlation_priors import (
    cpc_levels,
    lkj_cholesky_corr,
    lkj_correlation,
    mvn_logp_from_cholesky,
)

N_DRAWS = 20000


def test_two_by_two_correlation_prior_is_lkj():
    eta = 2.0
    with pm.Model(coords={"arm": ["one"]}):
        ours = lkj_correlation("corr", eta, "arm")
    ours = pm.draw(ours, draws=N_DRAWS, random_seed=1)[:, 0]
    reference = pm.draw(pm.LKJCorr.dist(n=2, eta=eta), draws=N_DRAWS, random_seed=2)[:, 1, 0]
    # E[corr^2] = 1 / (2 eta + 1) under LKJ(eta) with n = 2; Monte Carlo SE about 0.0015.
    for draws in (ours, reference):
        assert np.mean(draws**2) == pytest.approx(1 / (2 * eta + 1), abs=0.006)
    assert stats.ks_2samp(ours, reference).pvalue > 0.01


@pytest.mark.parametrize("eta", [1.0, 2.0])
def test_five_by_five_cholesky_prior_is_lkj(eta):
    size = 5
    with pm.Model():
        chol = lkj_cholesky_corr("corr", eta, size)
    ours = pm.draw(chol, draws=N_DRAWS, random_seed=3)
    reference = pm.draw(pm.LKJCorr.dist(n=size, eta=eta), draws=N_DRAWS, random_seed=4)
    ours_corr = ours @ np.swapaxes(ours, 1, 2)
    reference_corr = reference @ np.swapaxes(reference, 1, 2)
    assert np.allclose(np.diagonal(ours_corr, axis1=1, axis2=2), 1.0)
    assert np.all(np.linalg.eigvalsh(ours_corr) > 0)
    # Every off-diagonal correlation: E[r^2] = 1 / (2 eta + d - 1) under LKJ(eta), and the same
    # distribution as PyMC's LKJCorr draws (ten two-sample KS tests, Bonferroni at 1%).
    for row, column in cpc_levels(size):
        r, r_ref = ours_corr[:, row, column], reference_corr[:, row, column]
        assert np.mean(r**2) == pytest.approx(1 / (2 * eta + size - 1), abs=0.005)
        assert stats.ks_2samp(r, r_ref).pvalue > 0.001, (row, column)


def test_normal_density_by_forward_substitution_equals_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T + np.eye(4)
    values = rng.normal(size=(7, 4))
    ours = mvn_logp_from_cholesky(
        pt.as_tensor(values), pt.as_tensor(np.linalg.cholesky(cov)), 4
    ).eval()
    expected = stats.multivariate_normal(np.zeros(4), cov).logpdf(values).sum()
    assert ours == pytest.approx(expected, rel=1e-10)
