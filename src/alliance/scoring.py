"""Scoring of the working alliance inventory (WAI) and the System Usability Scale (SUS).

Scores are on the item scale: a WAI total or subscale is the mean of its scored items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


def item_columns(n_items: int, prefix: str = "item") -> list[str]:
    """Column names ``item_01`` ... for ``n_items`` items."""
    return [f"{prefix}_{k:02d}" for k in range(1, n_items + 1)]


@dataclass(frozen=True)
class WaiInstrument:
    """The WAI short form as the config describes it."""

    n_items: int = 12
    response_min: int = 1
    response_max: int = 7
    reverse_keyed: tuple[int, ...] = (4, 10)
    subscales: Mapping[str, Sequence[int]] | None = None
    max_missing_total: int = 2
    max_missing_subscale: int = 1

    @classmethod
    def from_config(cls, instrument: Mapping) -> WaiInstrument:
        return cls(
            n_items=instrument["n_items"],
            response_min=instrument["response_min"],
            response_max=instrument["response_max"],
            reverse_keyed=tuple(instrument["reverse_keyed"]),
            subscales={name: tuple(items) for name, items in instrument["subscales"].items()},
            max_missing_total=instrument["max_missing_total"],
            max_missing_subscale=instrument["max_missing_subscale"],
        )

    @property
    def columns(self) -> list[str]:
        return item_columns(self.n_items)


def reverse_key(answers: pd.DataFrame, instrument: WaiInstrument) -> pd.DataFrame:
    """Scored items: reverse-keyed answers x become (min + max) - x; missing stays missing."""
    scored = answers[instrument.columns].astype(float).copy()
    flip = instrument.response_min + instrument.response_max
    for item in instrument.reverse_keyed:
        column = instrument.columns[item - 1]
        scored[column] = flip - scored[column]
    return scored


def prorated_mean(items: pd.DataFrame, max_missing: int) -> pd.Series:
    """Mean of the answered items, or missing when more than ``max_missing`` are missing."""
    n_missing = items.isna().sum(axis=1)
    mean = items.mean(axis=1, skipna=True)
    return mean.where(n_missing <= max_missing)


def score_wai(answers: pd.DataFrame, instrument: WaiInstrument) -> pd.DataFrame:
    """Total and subscale scores, answered-item count and items at the scale's ceiling.

    Returns one row per row of ``answers`` (same index) with columns ``wai_total``, one column per
    subscale, ``n_items_answered`` and ``n_items_at_ceiling`` (scored items at the top answer).
    """
    scored = reverse_key(answers, instrument)
    result = pd.DataFrame(index=answers.index)
    result["wai_total"] = prorated_mean(scored, instrument.max_missing_total)
    for name, items in (instrument.subscales or {}).items():
        columns = [instrument.columns[item - 1] for item in items]
        result[name] = prorated_mean(scored[columns], instrument.max_missing_subscale)
    result["n_items_answered"] = scored.notna().sum(axis=1).astype(int)
    result["n_items_at_ceiling"] = (scored == instrument.response_max).sum(axis=1).astype(int)
    return result


SUS_ITEMS = item_columns(10, prefix="sus")


def score_sus(answers: pd.DataFrame) -> pd.Series:
    """Standard SUS score 0-100: odd items x - 1, even items 5 - x, sum times 2.5.

    Missing when any of the ten items is missing.
    """
    values = answers[SUS_ITEMS].astype(float).to_numpy()
    odd = values[:, 0::2] - 1
    even = 5 - values[:, 1::2]
    total = (np.sum(odd, axis=1) + np.sum(even, axis=1)) * 2.5
    return pd.Series(total, index=answers.index, name="sus")


def communication(n_messages: pd.Series, n_calls: pd.Series, n_visits: pd.Series) -> pd.DataFrame:
    """Communication amount (messages + calls + visits) and the asynchronous share.

    The share is the messages' part of the amount; missing when the amount is missing or zero.
    """
    amount = n_messages + n_calls + n_visits
    share = (n_messages / amount).where(amount > 0)
    return pd.DataFrame({"comm_amount": amount, "comm_async_share": share})
