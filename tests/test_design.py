"""The trial design (alliance.design): arms, raters, time coding and the aim (c) terms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from alliance.analysis_tables import digital_covariates
from alliance.design import (
    ARMS,
    ASSOCIATION_TERMS,
    CONDITIONAL_TERMS,
    PATIENT_LEVEL_TERMS,
    RATERS,
    REFERENCE_ARM,
    TERM_COLUMNS,
    TREATMENT_ARM,
    log_amount,
    time_code,
)
from alliance.growth import growth_contrasts
from alliance.scoring import SUS_ITEMS
from alliance.twin import association_predictors


def test_arms_and_reference_arm():
    assert ARMS == ("digital", "ptau")
    assert REFERENCE_ARM in ARMS and TREATMENT_ARM in ARMS
    assert REFERENCE_ARM != TREATMENT_ARM
    assert ARMS[0] == TREATMENT_ARM  # treatment first: categories, coordinates, tables


def test_time_code_is_zero_at_first_one_at_last_and_linear_in_months():
    np.testing.assert_allclose(time_code([3, 6, 12], [3, 6, 12]), [0, 1 / 3, 1])
    np.testing.assert_allclose(time_code([12, 3, 3], [3, 6, 12]), [1, 0, 0])
    # The order of the configured months does not matter; only the first and last month do.
    np.testing.assert_allclose(time_code([6], [12, 3]), [1 / 3])
    np.testing.assert_allclose(time_code(pd.Series([0, 12, 24]), [0, 24]), [0, 0.5, 1])


def test_log_amount_is_log_one_plus_amount():
    assert log_amount(0) == 0
    assert log_amount(math.e - 1) == pytest.approx(1)
    amounts = pd.Series([0.0, 9.0, np.nan], index=[5, 6, 7])
    logged = log_amount(amounts)
    assert list(logged.index) == [5, 6, 7]
    np.testing.assert_allclose(logged.iloc[:2], [0.0, math.log(10)])
    assert np.isnan(logged.iloc[2])


def test_association_terms_match_the_data_contract():
    assert ASSOCIATION_TERMS == {
        "patient": ("age", "sus", "vas_app", "comm_amount", "comm_async_share"),
        "therapist": ("age", "vas_platform", "comm_amount", "comm_async_share"),
    }
    assert set(ASSOCIATION_TERMS) == set(RATERS)
    for terms in ASSOCIATION_TERMS.values():
        assert set(PATIENT_LEVEL_TERMS) <= set(terms)
        for term, defining in CONDITIONAL_TERMS.items():
            assert term in terms and defining in terms
    assert TERM_COLUMNS == {"comm_amount": "comm_amount_log"}


def _digital_rows() -> tuple[pd.DataFrame, pd.DataFrame]:
    patients = pd.DataFrame({"patient_id": ["p1", "p2"], "age": [40.0, 61.0]})
    digital = pd.DataFrame(
        {
            "patient_id": ["p1", "p1", "p2"],
            "month": [3, 6, 3],
            **{item: [3, 4, 2] for item in SUS_ITEMS},
            "vas_app": [7.0, 8.0, 5.5],
            "vas_platform": [6.0, 6.5, 9.0],
            "n_messages": [0, 2, 5],
            "n_calls": [0, 1, 3],
            "n_visits": [0, 0, 1],
        }
    )
    return digital, patients


def test_every_term_has_its_analysis_column_on_the_log_amount_scale():
    digital, patients = _digital_rows()
    table = digital_covariates(digital, patients)
    for terms in ASSOCIATION_TERMS.values():
        for term in terms:
            assert TERM_COLUMNS.get(term, term) in table
    np.testing.assert_allclose(table["comm_amount_log"], log_amount(np.array([0.0, 3.0, 9.0])))
    np.testing.assert_allclose(table["comm_amount_log"], [0.0, math.log(4), math.log(10)])


def test_twin_predictors_are_the_association_terms_on_their_analysis_scale():
    digital, patients = _digital_rows()
    predictors = association_predictors(digital, patients)
    all_terms = {term for terms in ASSOCIATION_TERMS.values() for term in terms}
    assert set(predictors.columns) == all_terms
    np.testing.assert_allclose(predictors["comm_amount"], [0.0, math.log(4), math.log(10)])
    assert predictors["comm_async_share"].isna().tolist() == [True, False, False]


def test_contrasts_are_treatment_minus_reference():
    months = [3, 6, 12]
    means = xr.DataArray(
        [[[5.0, 5.5, 6.0], [6.0, 6.0, 6.0]]],
        dims=("draw", "arm", "month"),
        coords={"arm": [TREATMENT_ARM, REFERENCE_ARM], "month": months},
    )
    contrasts = growth_contrasts(means)
    np.testing.assert_allclose(contrasts["arm_difference"].values.ravel(), [-1.0, -0.5, 0.0])
    assert contrasts["change_difference"].values.tolist() == pytest.approx([1.0])
