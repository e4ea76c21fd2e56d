"""LKJ priors on correlations, and the multivariate normal density, built from elementwise terms.

PyMC's ``LKJCholeskyCov`` and ``MvNormal`` are general but compile slowly into nutpie's numba
backend (tens of seconds each, more than sampling these models takes). The constructions here
are the same distributions written with scalar operations only:

- For a d x d correlation matrix, LKJ(eta) is equivalent to independent canonical partial
  correlations (C-vine): the partial correlation at tree level k (0-based) is
  ``2 * Beta(b_k, b_k) - 1`` with ``b_k = eta + (d - 2 - k) / 2`` (Lewandowski, Kurowicka and
  Joe 2009, section 3.2). Its Cholesky factor follows row by row from them. For d = 2 this is
  ``(corr + 1) / 2 ~ Beta(eta, eta)``.
- The multivariate normal log density of rows with covariance ``chol @ chol.T`` is computed by
  forward substitution.
"""

from __future__ import annotations

import numpy as np


def lkj_correlation(name: str, eta: float, dims: str):
    """A batch (along ``dims``) of 2 x 2 correlations with LKJ(eta) priors, named ``name``.

    The free variable is ``{name}_01`` = (corr + 1) / 2 ~ Beta(eta, eta).
    """
    import pymc as pm

    unit = pm.Beta(f"{name}_01", alpha=eta, beta=eta, dims=dims)
    return pm.Deterministic(name, 2 * unit - 1, dims=dims)


def cpc_levels(size: int) -> list[tuple[int, int]]:
    """The (row, column) of each canonical partial correlation, in the free variable's order."""
    return [(row, column) for row in range(1, size) for column in range(row)]


def lkj_cholesky_corr(name: str, eta: float, size: int):
    """Cholesky factor of a ``size`` x ``size`` correlation matrix with an LKJ(eta) prior.

    The free variable is ``{name}_cpc_01``: the canonical partial correlations mapped to (0, 1).
    """
    import pymc as pm
    import pytensor.tensor as pt

    levels = cpc_levels(size)
    shape = np.array([eta + (size - 2 - column) / 2 for _, column in levels])
    cpc = 2 * pm.Beta(f"{name}_cpc_01", alpha=shape, beta=shape, shape=len(levels)) - 1
    rows = [[pt.constant(1.0)] + [pt.constant(0.0)] * (size - 1)]
    position = 0
    for row in range(1, size):
        entries, remaining = [], pt.constant(1.0)
        for _ in range(row):
            value = cpc[position] * pt.sqrt(remaining)
            entries.append(value)
            remaining = remaining - value**2
            position += 1
        entries.append(pt.sqrt(remaining))
        rows.append(entries + [pt.constant(0.0)] * (size - row - 1))
    return pt.stack([pt.stack(entries) for entries in rows])


def mvn_logp_from_cholesky(values, chol, size: int):
    """Summed log density of the rows of ``values`` (``size`` columns) under N(0, chol @ chol.T)."""
    import pytensor.tensor as pt

    n_rows = values.shape[0]
    whitened = []
    for k in range(size):
        partial = values[:, k]
        for j, previous in enumerate(whitened):
            partial = partial - chol[k, j] * previous
        whitened.append(partial / chol[k, k])
    squares = sum(pt.sum(column**2) for column in whitened)
    log_det = sum(pt.log(chol[k, k]) for k in range(size))
    return -0.5 * squares - n_rows * log_det - 0.5 * n_rows * size * np.log(2 * np.pi)
