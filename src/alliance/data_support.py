"""Can the data support every model? Checks made after cleaning, before any model is fitted.

Valid input (the data contract) can still be too thin for a model: no month-12 rating in one arm
leaves that arm's month-12 mean and the change difference to the priors alone, a predictor that
never varies has no association to estimate. Each problem names the rules it blocks, so the run
stops with one clear message instead of a traceback (or an estimate the data cannot carry).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from alliance.design import ARMS, ASSOCIATION_TERMS, RATERS, TERM_COLUMNS, TREATMENT_ARM

#: Fewest ratings per arm x month x rater for the growth and agreement models.
MIN_RATINGS_PER_CELL = 2
#: Fewest assessments rated by both per arm x month (truth-and-bias slopes, agreement checks).
MIN_PAIRS_PER_CELL = 3


def support_problems(
    alliance: pd.DataFrame, covariates: pd.DataFrame, instrument: Mapping
) -> list[str]:
    """Every reason the data cannot support a model, each naming the rules it blocks."""
    months = list(instrument["months"])
    scored = alliance[alliance["assessed"]]
    problems = []
    for arm in ARMS:
        if not (alliance["arm"] == arm).any():
            problems.append(f"all models: no patient is randomised to the {arm} arm.")
    if problems:
        return problems

    counts = scored.groupby(["rater", "arm", "month"]).size()
    for rater in RATERS:
        for arm in ARMS:
            for month in months:
                n = int(counts.get((rater, arm, month), 0))
                if n < MIN_RATINGS_PER_CELL:
                    problems.append(
                        f"fit_growth ({rater} rating), fit_agreement: {n} {rater} ratings at "
                        f"month {month} in the {arm} arm; at least {MIN_RATINGS_PER_CELL} are "
                        f"needed to estimate that arm's month-{month} mean."
                    )

    pairs = scored.pivot_table(
        index=["patient_id", "arm", "month"], columns="rater", values="wai_total"
    ).reindex(columns=list(RATERS))
    paired = pairs.dropna().groupby(level=["arm", "month"]).size()
    for arm in ARMS:
        for month in months:
            n = int(paired.get((arm, month), 0))
            if n < MIN_PAIRS_PER_CELL:
                problems.append(
                    f"truth_and_bias, check_agreement: {n} assessments at month {month} in the "
                    f"{arm} arm are rated by both patient and therapist; at least "
                    f"{MIN_PAIRS_PER_CELL} are needed to relate the two ratings."
                )

    digital = scored[scored["arm"] == TREATMENT_ARM]
    for rater in RATERS:
        rated = digital[digital["rater"] == rater][["patient_id", "month", "age"]]
        merged = rated.merge(covariates.drop(columns="age"), on=["patient_id", "month"], how="left")
        terms = ASSOCIATION_TERMS[rater]
        needed = len(terms) + len(months) + 2
        if len(merged) < needed:
            problems.append(
                f"fit_association ({rater} rating): {len(merged)} scored {rater} ratings in the "
                f"digital arm; at least {needed} are needed for {len(terms)} predictors and "
                f"{len(months)} month means."
            )
            continue
        for term in terms:
            values = merged[TERM_COLUMNS.get(term, term)].dropna()
            if values.nunique() < 2:
                problems.append(
                    f"fit_association ({rater} rating): the predictor {term} "
                    f"{'is never observed' if values.empty else 'takes a single value'} at the "
                    f"digital arm's scored {rater} ratings, so its association cannot be estimated."
                )
    return problems


def support_report(problems: list[str]) -> str:
    """One message listing every problem, for the console."""
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return (
        f"The input data are valid but cannot support every model, so no model was fitted:\n{lines}"
    )
