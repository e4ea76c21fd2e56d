import math

import numpy as np
import pandas as pd
import pytest

from alliance.scoring import (
    SUS_ITEMS,
    WaiInstrument,
    communication,
    item_columns,
    prorated_mean,
    score_sus,
    score_wai,
)


@pytest.fixture
def instrument(config):
    return WaiInstrument.from_config(config["instrument"])


def answers(rows):
    return pd.DataFrame(rows, columns=item_columns(12), dtype=float)


def test_reverse_keyed_items_score_eight_minus_answer(instrument):
    # All 7s except the reverse-keyed items 4 and 10 answered 1: they score 7, total 7.
    row = [7.0] * 12
    row[3] = row[9] = 1.0
    scores = score_wai(answers([row]), instrument)
    assert scores.loc[0, "wai_total"] == 7.0
    assert scores.loc[0, "n_items_at_ceiling"] == 12


def test_total_and_subscales_are_means_of_scored_items(instrument):
    row = [1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5]
    scores = score_wai(answers([row]), instrument).iloc[0]
    scored = np.array(row, dtype=float)
    scored[[3, 9]] = 8 - scored[[3, 9]]
    assert scores["wai_total"] == pytest.approx(scored.mean())
    assert scores["task"] == pytest.approx(scored[[0, 1, 9, 11]].mean())  # 1, 2, 10, 12
    assert scores["goal"] == pytest.approx(scored[[3, 5, 7, 10]].mean())  # 4, 6, 8, 11
    assert scores["bond"] == pytest.approx(scored[[2, 4, 6, 8]].mean())  # 3, 5, 7, 9


def test_prorating_at_and_past_the_limit(instrument):
    at_limit = [6.0] * 10 + [math.nan, math.nan]  # 2 missing: pro-rated
    past_limit = [6.0] * 9 + [math.nan] * 3  # 3 missing: missing
    scores = score_wai(answers([at_limit, past_limit]), instrument)
    assert scores.loc[0, "wai_total"] == pytest.approx((6 * 8 + 2 * 2) / 10)  # items 4, 10 -> 2
    assert math.isnan(scores.loc[1, "wai_total"])
    assert scores["n_items_answered"].tolist() == [10, 9]


def test_subscale_prorating_allows_one_missing_item(instrument):
    one_missing = [5.0] * 12
    one_missing[0] = math.nan  # task loses item 1
    two_missing = list(one_missing)
    two_missing[1] = math.nan  # task loses items 1 and 2
    scores = score_wai(answers([one_missing, two_missing]), instrument)
    assert scores.loc[0, "task"] == pytest.approx((5 + 3 + 5) / 3)  # item 10 reversed: 3
    assert math.isnan(scores.loc[1, "task"])
    assert scores.loc[1, "bond"] == 5.0


def test_prorated_mean_counts_missing_per_row():
    items = pd.DataFrame({"a": [1.0, np.nan], "b": [3.0, np.nan], "c": [5.0, 4.0]})
    result = prorated_mean(items, max_missing=1)
    assert result.iloc[0] == 3.0 and math.isnan(result.iloc[1])


def test_sus_standard_scoring():
    best = pd.DataFrame([[5, 1] * 5], columns=SUS_ITEMS)  # odd 5, even 1 -> 100
    worst = pd.DataFrame([[1, 5] * 5], columns=SUS_ITEMS)  # -> 0
    neutral = pd.DataFrame([[3] * 10], columns=SUS_ITEMS)  # every item contributes 2 -> 50
    mixed = pd.DataFrame([[4, 2, 5, 1, 3, 3, 4, 2, 5, 2]], columns=SUS_ITEMS)
    # odd: 3 + 4 + 2 + 3 + 4 = 16; even: 3 + 4 + 2 + 3 + 3 = 15; (16 + 15) * 2.5 = 77.5
    table = pd.concat([best, worst, neutral, mixed], ignore_index=True)
    assert score_sus(table).tolist() == [100.0, 0.0, 50.0, 77.5]


def test_sus_missing_when_any_item_missing():
    row = pd.DataFrame([[4, 2, 5, 1, 3, np.nan, 4, 2, 5, 2]], columns=SUS_ITEMS)
    assert math.isnan(score_sus(row).iloc[0])


def test_communication_amount_and_async_share():
    result = communication(
        pd.Series([6.0, 0.0, np.nan]), pd.Series([2.0, 0.0, 1.0]), pd.Series([2.0, 0.0, 1.0])
    )
    assert result["comm_amount"].iloc[0] == 10
    assert result["comm_async_share"].iloc[0] == pytest.approx(0.6)
    assert math.isnan(result["comm_async_share"].iloc[1])  # no communication: share undefined
    assert math.isnan(result["comm_amount"].iloc[2])
