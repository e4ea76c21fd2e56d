"""The trial's design, defined once: arms, raters, time coding and the aim (c) association terms.

Every module (input validation, analysis tables, the models, the synthetic twin, figures, the
report) takes these from here rather than spelling them out again:

- Arms: patients are randomised to the digital arm (stepped e-health, the treatment) or to PTAU
  (usual care, the reference arm). Every contrast is treatment minus reference ("digital minus
  ptau"), and aim (c) is estimated in the treatment arm only, where the covariates are measured.
- Raters: each assessment has a patient-rated and a therapist-rated WAI.
- Time coding: ``time`` is 0 at the first configured assessment month, 1 at the last, and linear
  in months in between, so a model's arm x time coefficient is the change difference from the
  first to the last month. The months themselves are configuration (``instrument.months``).
- Aim (c) association terms: the predictors of each rater's alliance and the analysis column
  behind each (``comm_amount`` enters as log(1 + amount), column ``comm_amount_log``); which
  terms are measured once per patient, and which are undefined (not missing) when another is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The arm whose effect is estimated (stepped e-health); the minuend of every arm contrast.
TREATMENT_ARM = "digital"
#: The reference arm (primary-care treatment as usual); the subtrahend of every arm contrast.
REFERENCE_ARM = "ptau"
#: Both arms, treatment first (the order of categories, coordinates and tables).
ARMS = (TREATMENT_ARM, REFERENCE_ARM)

#: Who rates the alliance at each assessment.
RATERS = ("patient", "therapist")

#: Aim (c) predictors of each rater's alliance (treatment arm only), in model order.
ASSOCIATION_TERMS = {
    "patient": ("age", "sus", "vas_app", "comm_amount", "comm_async_share"),
    "therapist": ("age", "vas_platform", "comm_amount", "comm_async_share"),
}
#: The analysis-table column behind a term where it differs from the term (the log amount).
TERM_COLUMNS = {"comm_amount": "comm_amount_log"}
#: Predictors measured once per patient (the rest vary by assessment).
PATIENT_LEVEL_TERMS = ("age",)
#: Predictors undefined (not missing) where another is zero: term -> its defining column.
CONDITIONAL_TERMS = {"comm_async_share": "comm_amount"}


def time_code(months: Sequence[float] | np.ndarray, all_months: Sequence[int]) -> np.ndarray:
    """0 at the first assessment month, 1 at the last, linear in months in between."""
    first, last = min(all_months), max(all_months)
    return (np.asarray(months, dtype=float) - first) / (last - first)


def log_amount(amount):
    """The communication amount on its analysis scale, log(1 + amount) (0 stays 0).

    Works on scalars, arrays and pandas objects (it keeps their index); missing stays missing.
    """
    return np.log1p(amount)
