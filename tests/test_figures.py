"""Figures state the interval mass the config asks for, not a fixed 95%."""

import numpy as np
import pandas as pd

from alliance.figures import bland_altman_figure, statistic_check_figure, trajectory_band_figure
from alliance.posterior_summary import predictive_check_row


def texts(fig) -> str:
    parts = [text.get_text() for ax in fig.axes for text in (ax.title, *ax.texts)]
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None:
            parts.extend(text.get_text() for text in legend.get_texts())
    return "\n".join(parts)


def test_figures_with_intervals_state_the_configured_mass():
    check = pd.DataFrame(
        [predictive_check_row("digital", 3, 0.4, np.array([0.1, 0.3, 0.5, 0.7]), ci_prob=0.9)]
    )
    assert "replicated (90% interval)" in texts(statistic_check_figure(check, "r", "check"))

    means = pd.DataFrame(
        {
            "rater": "patient",
            "arm": ["digital", "digital", "ptau", "ptau"],
            "month": [3, 12, 3, 12],
            "mean": [5.5, 5.6, 6.0, 6.1],
            "ci_low": [5.3, 5.4, 5.8, 5.9],
            "ci_high": [5.7, 5.8, 6.2, 6.3],
            "ci_prob": 0.8,
        }
    )
    observed = means[["rater", "arm", "month", "mean"]]
    legend = texts(trajectory_band_figure(means, observed, [3, 12]))
    assert "digital (posterior mean, 80% interval)" in legend and "95%" not in legend

    pairs = pd.DataFrame(
        {"arm": ["digital", "ptau"] * 3, "patient": [6, 5, 6, 7, 5, 6], "therapist": 5.0}
    )
    summary = pd.DataFrame(
        [
            {"estimand": e, "arm": a, "mean": 0.5, "ci_low": 0.3, "ci_high": 0.7, "ci_prob": 0.9}
            for e in ("rater_bias", "loa_low", "loa_high")
            for a in ("digital", "ptau")
        ]
    )
    assert "bands: 90% credible intervals" in texts(bland_altman_figure(pairs, summary))


def test_the_sbc_figure_draws_a_panel_per_model_and_marks_a_parameter_outside_its_band():
    import numpy as np
    import pandas as pd

    from alliance.figures import sbc_ecdf_figure

    uniform = list(np.arange(40) % 10)
    rows = pd.DataFrame(
        {
            "model": ["m"] * 80 + ["n"],
            "parameter": ["a"] * 40 + ["b"] * 40 + ["c"],
            "rank": uniform + [0] * 40 + [3],  # b: every true value below every draw
        }
    )
    fig = sbc_ecdf_figure(rows, kept=9)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["m (2 parameters)", "n (1 parameters)"]
    # One band, an ECDF line per parameter and the zero line; only b is labelled, in red.
    assert len(axes[0].collections) == 1 and len(axes[0].lines) == 3
    assert [t.get_text() for t in axes[0].texts] == ["b"]
    assert axes[1].texts[0].get_text() == "one simulation"
