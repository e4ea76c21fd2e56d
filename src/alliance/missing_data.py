"""What the missing ratings look like, and what they imply for the missing-at-random assumption.

- :func:`missing_patterns`: per rater and arm, how many patients rated at every month, stopped
  for good (monotone dropout), skipped a month and came back (intermittent), or never rated.
- :func:`trajectories_by_dropout`: mean observed ratings by month for patients grouped by their
  pattern and the month of their last rating (do the ratings of those who drop out fall first?).
- :func:`fit_dropout_model`: a Bayesian logistic regression of a rating being missing on the
  patient's previous rating (standardised per rater), arm, rater and month, among patients whose
  previous rating was observed. A previous rating that predicts dropout means the data are not
  missing completely at random; missing at random (what the growth models assume) allows that,
  but not dependence on the unobserved rating itself, which no observed data can check: that is
  what the tipping-point analysis (:mod:`alliance.tipping_points`) explores.

The logistic regression has five coefficients and one row per eligible assessment; it is sampled
with a random-walk Metropolis sampler whose proposal is the Laplace approximation's covariance
(scaled by 2.38^2 / d), four chains from dispersed starts, and judged by the usual R-hat and ESS.
That costs a fraction of a second, where compiling a NUTS sampler would cost more than the rest
of this step. Patients contribute up to four rows (two raters, two months) and the model has no
patient effect, so its intervals are somewhat too narrow; it describes, it does not adjust.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import optimize, special

from alliance.design import ARMS, RATERS, TREATMENT_ARM

PATTERNS = ("complete", "monotone dropout", "intermittent", "never rated")
#: The dropout model's coefficients (log-odds of a missing rating).
DROPOUT_TERMS = ("intercept", "previous_rating_sd", "digital_arm", "therapist_rater", "last_month")


def assessed_table(alliance: pd.DataFrame, rater: str, months: Sequence[int]) -> pd.DataFrame:
    """Patients (index arm, patient_id) x months: whether the ``rater`` rating was given."""
    rows = alliance[alliance["rater"] == rater]
    table = rows.pivot_table(
        index=["arm", "patient_id"], columns="month", values="assessed", aggfunc="any"
    )
    return table.reindex(columns=list(months)).fillna(False).astype(bool)


def pattern_of(flags: np.ndarray) -> str:
    """The missing-data pattern of one patient's ratings in month order."""
    if flags.all():
        return "complete"
    if not flags.any():
        return "never rated"
    last = np.flatnonzero(flags)[-1]
    return "monotone dropout" if flags[: last + 1].all() else "intermittent"


def missing_patterns(alliance: pd.DataFrame, months: Sequence[int]) -> pd.DataFrame:
    """Patients per rater, arm and pattern (:data:`PATTERNS`), with the share of the arm."""
    rows = []
    for rater in RATERS:
        assessed = assessed_table(alliance, rater, months)
        patterns = pd.Series(
            [pattern_of(flags) for flags in assessed.to_numpy()], index=assessed.index
        )
        for arm in ARMS:
            counts = patterns.loc[arm].value_counts().reindex(list(PATTERNS), fill_value=0)
            for pattern, count in counts.items():
                rows.append(
                    {
                        "rater": rater,
                        "arm": arm,
                        "pattern": pattern,
                        "n_patients": int(count),
                        "share": count / counts.sum(),
                    }
                )
    return pd.DataFrame(rows)


def dropout_group(flags: np.ndarray, months: Sequence[int]) -> str:
    """A patient's group for the trajectories: complete, last rated at month m, intermittent."""
    pattern = pattern_of(flags)
    if pattern == "monotone dropout":
        return f"last rated at month {months[np.flatnonzero(flags)[-1]]}"
    return pattern


def trajectories_by_dropout(alliance: pd.DataFrame, months: Sequence[int]) -> pd.DataFrame:
    """Mean observed WAI score by rater, arm, dropout group and month (columns rater, arm, group,
    month, n, mean, se); patients who never rated have no trajectory."""
    rows = []
    for rater in RATERS:
        assessed = assessed_table(alliance, rater, months)
        groups = {
            patient: dropout_group(flags, months)
            for (_, patient), flags in zip(assessed.index, assessed.to_numpy(), strict=True)
        }
        rated = alliance[(alliance["rater"] == rater) & alliance["assessed"]].copy()
        rated["group"] = rated["patient_id"].map(groups)
        summary = rated.groupby(["arm", "group", "month"])["wai_total"].agg(
            ["count", "mean", "std"]
        )
        for (arm, group, month), row in summary.iterrows():
            rows.append(
                {
                    "rater": rater,
                    "arm": arm,
                    "group": group,
                    "month": int(month),
                    "n": int(row["count"]),
                    "mean": row["mean"],
                    "se": row["std"] / np.sqrt(row["count"]) if row["count"] > 1 else np.nan,
                }
            )
    return pd.DataFrame(rows)


def dropout_data(alliance: pd.DataFrame, months: Sequence[int]) -> pd.DataFrame:
    """One row per patient, rater and month after the first whose previous scheduled rating was
    observed: ``missing`` (the rating at this month was not given) and the predictors of
    :data:`DROPOUT_TERMS` (the previous rating standardised over all such previous ratings of
    the rater)."""
    frames = []
    for rater in RATERS:
        rows = alliance[alliance["rater"] == rater]
        wide = rows.pivot_table(index=["arm", "patient_id"], columns="month", values="wai_total")
        assessed = assessed_table(alliance, rater, months)
        wide = wide.reindex(index=assessed.index, columns=list(months))
        for previous, month in zip(months[:-1], months[1:], strict=True):
            eligible = assessed[previous].to_numpy()
            frame = pd.DataFrame(
                {
                    "arm": assessed.index.get_level_values("arm")[eligible],
                    "patient_id": assessed.index.get_level_values("patient_id")[eligible],
                    "rater": rater,
                    "month": month,
                    "previous_rating": wide[previous].to_numpy()[eligible],
                    "missing": ~assessed[month].to_numpy()[eligible],
                }
            )
            frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    data = data[data["previous_rating"].notna()].reset_index(drop=True)
    by_rater = data.groupby("rater")["previous_rating"]
    data["previous_rating_sd"] = (data["previous_rating"] - by_rater.transform("mean")) / (
        by_rater.transform("std")
    )
    data["digital_arm"] = (data["arm"] == TREATMENT_ARM).astype(float)
    data["therapist_rater"] = (data["rater"] == RATERS[1]).astype(float)
    data["last_month"] = (data["month"] == months[-1]).astype(float)
    data["intercept"] = 1.0
    return data


def _log_posterior(beta: np.ndarray, x: np.ndarray, y: np.ndarray, prior_sd: np.ndarray):
    """Log posterior of logistic regression coefficients (columns of ``beta``) and its gradient."""
    eta = x @ beta
    log_likelihood = (y[:, None] * eta - np.logaddexp(0, eta)).sum(axis=0)
    log_prior = -0.5 * ((beta / prior_sd[:, None]) ** 2).sum(axis=0)
    gradient = x.T @ (y[:, None] - special.expit(eta)) - beta / prior_sd[:, None] ** 2
    return log_likelihood + log_prior, gradient


def fit_dropout_model(
    data: pd.DataFrame,
    priors: Mapping[str, float],
    seed: int,
    chains: int = 4,
    draws: int = 10000,
    tune: int = 2000,
) -> xr.Dataset:
    """Posterior draws (chain, draw, term) of the dropout model's coefficients.

    ``priors``: normal prior SDs, ``intercept`` and ``coefficient`` (every other term). Sampled by
    random-walk Metropolis with the Laplace approximation's covariance as the proposal (see the
    module's docstring), ``draws`` kept per chain after ``tune`` warm-up iterations (random-walk
    draws are strongly autocorrelated: 10,000 give a bulk ESS of about 2,500 per coefficient).
    """
    x = data[list(DROPOUT_TERMS)].to_numpy(dtype=float)
    y = data["missing"].to_numpy(dtype=float)
    prior_sd = np.array(
        [priors["intercept"], *[priors["coefficient"]] * (len(DROPOUT_TERMS) - 1)], dtype=float
    )

    def negative(beta):
        value, gradient = _log_posterior(beta[:, None], x, y, prior_sd)
        return -value[0], -gradient[:, 0]

    mode = optimize.minimize(negative, np.zeros(x.shape[1]), jac=True, method="BFGS").x
    weights = special.expit(x @ mode) * (1 - special.expit(x @ mode))
    precision = x.T @ (weights[:, None] * x) + np.diag(1 / prior_sd**2)
    covariance = np.linalg.inv(precision)
    rng = np.random.default_rng(seed)
    factor = np.linalg.cholesky(covariance)
    # Dispersed starts: the mode plus twice the approximate posterior SD in random directions.
    current = mode[:, None] + 2 * factor @ rng.standard_normal((x.shape[1], chains))
    current_logp, _ = _log_posterior(current, x, y, prior_sd)
    step = factor * 2.38 / np.sqrt(x.shape[1])
    kept = np.empty((chains, draws, x.shape[1]))
    for iteration in range(tune + draws):
        proposal = current + step @ rng.standard_normal((x.shape[1], chains))
        proposal_logp, _ = _log_posterior(proposal, x, y, prior_sd)
        accept = np.log(rng.uniform(size=chains)) < proposal_logp - current_logp
        current = np.where(accept, proposal, current)
        current_logp = np.where(accept, proposal_logp, current_logp)
        if iteration >= tune:
            kept[:, iteration - tune] = current.T
    return xr.Dataset(
        {"beta": (("chain", "draw", "term"), kept)},
        coords={"chain": range(chains), "draw": range(draws), "term": list(DROPOUT_TERMS)},
    )


def dropout_summary(posterior: xr.Dataset, ci_prob: float) -> pd.DataFrame:
    """Per coefficient: posterior mean of the log-odds, the odds ratio (posterior median and
    ``ci_prob`` interval), P(coefficient > 0), R-hat and bulk ESS (ArviZ's, computed by
    :func:`alliance.diagnostics.convergence_statistics`)."""
    from alliance.diagnostics import convergence_statistics

    beta = posterior["beta"].transpose("chain", "draw", "term")
    flat = beta.stack(sample=("chain", "draw"))
    tail = (1 - ci_prob) / 2
    diagnostics = convergence_statistics(beta.to_numpy())
    table = pd.DataFrame(
        {
            "term": list(beta["term"].values),
            "log_odds_mean": flat.mean("sample").values,
            "odds_ratio": np.exp(flat.median("sample").values),
            "odds_ratio_ci_low": np.exp(flat.quantile(tail, dim="sample").values),
            "odds_ratio_ci_high": np.exp(flat.quantile(1 - tail, dim="sample").values),
            "prob_positive": (flat > 0).mean("sample").values,
            "r_hat": diagnostics["r_hat"],
            "ess_bulk": diagnostics["ess_bulk"],
        }
    )
    table["ci_prob"] = ci_prob
    return table


def dropout_sentence(summary: pd.DataFrame, decision_prob: float = 0.95) -> str:
    """What the dropout model says about the missing-at-random assumption, in one sentence;
    a direction is stated when its posterior probability reaches ``decision_prob``."""
    row = summary.set_index("term").loc["previous_rating_sd"]
    lower = 1 / row["odds_ratio"]
    interval = f"{1 / row['odds_ratio_ci_high']:.2f} to {1 / row['odds_ratio_ci_low']:.2f}"
    probability = 1 - row["prob_positive"]
    caveat = (
        "Each growth model conditions on the same rater's earlier ratings only: if missingness "
        "depended on the other rater's rating, the comparison with both raters below would show "
        "it; whether the missing ratings depend on the unobserved rating itself cannot be "
        "checked from the data, which is what the tipping points below explore."
    )
    if probability >= decision_prob:
        verdict = (
            "so the ratings are not missing completely at random: a lower alliance precedes a "
            "missing rating. Missing at random, which the growth models assume, allows this."
        )
    elif probability <= 1 - decision_prob:
        verdict = (
            "so a higher alliance precedes a missing rating: not missing completely at random, "
            "which missing at random allows."
        )
    else:
        verdict = (
            "so the data show no clear dependence of missingness on the previous rating; that "
            "does not establish missing at random."
        )
    return (
        f"Each standard deviation lower previous rating multiplies the odds that the next rating "
        f"is missing by {lower:.2f} ({interval}; posterior probability {probability:.2f} that "
        f"lower ratings precede missing ones), {verdict} {caveat}"
    )


#: Columns of results/tables/aim_a_given_both_raters.csv.
BOTH_RATERS_COLUMNS = ["estimand", "rater", "month", "model", "mean", "ci_low", "ci_high"]


def contrasts_given_both_raters(
    agreement_posterior: xr.Dataset, growth_detail: pd.DataFrame, months: list[int], ci_prob: float
) -> pd.DataFrame:
    """Aim (a)'s arm and change differences under the bivariate agreement model (missing at
    random given both raters) beside each rater's reported growth model (``growth_detail``:
    results/tables/growth_estimands.csv)."""
    from alliance.agreement import agreement_growth_contrasts
    from alliance.posterior_summary import month_labels, summarise_draws

    rows = []
    for rater, contrasts in agreement_growth_contrasts(agreement_posterior, months).items():
        for name in ("arm_difference", "change_difference"):
            table = summarise_draws(
                contrasts[name], ci_prob, 0.0, {"estimand": name, "rater": rater}
            )
            rows.append(table.assign(model="bivariate (both raters)"))
    bivariate = pd.concat(rows, ignore_index=True)
    bivariate["month"] = month_labels(pd.to_numeric(bivariate["month"], errors="coerce"))
    growth = growth_detail[growth_detail["estimand"].isin(["arm_difference", "change_difference"])]
    growth = growth.assign(
        model="reported growth model (one rater)",
        month=month_labels(pd.to_numeric(growth["month"], errors="coerce")),
    )
    table = pd.concat([growth, bivariate], ignore_index=True)[BOTH_RATERS_COLUMNS]
    order = pd.to_numeric(table["month"], errors="coerce").fillna(np.inf)
    return (
        table.assign(order=order)
        .sort_values(["estimand", "rater", "order", "model"], kind="stable")
        .drop(columns="order")
        .reset_index(drop=True)
    )
