"""Missing not at random: the delta-adjusted tipping points of F1 to F3 (issue 15)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from alliance.config_checks import delta_grid_problem
from alliance.posterior_summary import summarise_draws
from alliance.tipping_points import (
    delta_grid,
    missing_weights,
    shifted_estimands,
    tipping_analysis,
    tipping_sentence,
    visits_since_last_observed,
)

MONTHS = [3, 6, 12]
SUMMARY = {"ci_prob": 0.95, "rope_wai": 0.2, "rope_correlation": 0.1, "decision_prob": 0.95}
GRID = {"lowest": -1.0, "highest": 0.0, "step": 0.1}


def test_the_grid_runs_from_lowest_to_highest_through_zero():
    grid = delta_grid(GRID)
    assert len(grid) == 11 and grid[0] == -1.0 and grid[-1] == 0.0 and 0.0 in grid
    assert list(delta_grid({"lowest": -0.5, "highest": 0.5, "step": 0.25})) == [
        -0.5,
        -0.25,
        0.0,
        0.25,
        0.5,
    ]
    assert delta_grid_problem({"delta": GRID}) is None
    problem = delta_grid_problem({"delta": {"lowest": -1.0, "highest": 0.05, "step": 0.3}})
    assert problem.startswith("missing_data.delta:") and "hold 0" in problem
    assert list(delta_grid({"lowest": -0.25, "highest": 0.0, "step": 0.125})) == [-0.25, -0.125, 0]
    with pytest.raises(ValueError, match="more than one value"):
        delta_grid({"lowest": 0.0, "highest": 0.0, "step": 0.1})


def test_visits_since_the_last_observed_rating_count_up_and_reset():
    assessed = pd.DataFrame(
        [[True, False, False], [False, True, False], [False, False, False], [True, True, True]],
        columns=MONTHS,
    )
    counts = visits_since_last_observed(assessed)
    assert counts.to_numpy().tolist() == [[0, 1, 2], [1, 0, 1], [1, 2, 3], [0, 0, 0]]


def alliance_table(assessed: dict[str, list[list[bool]]], rater="patient") -> pd.DataFrame:
    rows = []
    for arm, patients in assessed.items():
        for number, flags in enumerate(patients):
            for month, flag in zip(MONTHS, flags, strict=True):
                for who in ("patient", "therapist"):
                    rows.append(
                        {
                            "patient_id": f"{arm}{number}",
                            "arm": arm,
                            "month": month,
                            "rater": who,
                            # The other rater's ratings are all present: they must not count.
                            "assessed": flag if who == rater else True,
                        }
                    )
    return pd.DataFrame(rows)


ASSESSED = {
    "digital": [[True, True, False], [True, False, False], [True, True, True], [False, True, True]],
    "ptau": [[True, True, True], [True, True, False]],
}


def test_the_weights_are_the_share_missing_and_the_mean_assessments_missed():
    alliance = alliance_table(ASSESSED)
    constant = missing_weights(alliance, "patient", MONTHS, "constant")
    assert constant.sel(arm="digital").values.tolist() == [0.25, 0.25, 0.5]
    assert constant.sel(arm="ptau").values.tolist() == [0.0, 0.0, 0.5]
    growing = missing_weights(alliance, "patient", MONTHS, "growing")
    # digital month 12: patients 0 (1 missed), 1 (2 missed), 2 and 3 observed -> 3/4.
    assert growing.sel(arm="digital").values.tolist() == [0.25, 0.25, 0.75]
    assert missing_weights(alliance, "therapist", MONTHS, "constant").values.sum() == 0.0


def fake_means(seed=0, digital=5.5, ptau=6.0, draws=1000):
    """Marginal-mean draws (chain, draw, arm, month) around the given arm means."""
    rng = np.random.default_rng(seed)
    centre = np.array([[digital, digital - 0.05, digital - 0.1], [ptau, ptau, ptau + 0.1]])
    values = centre + rng.normal(0, 0.12, size=(2, draws, 2, 3))
    return xr.DataArray(
        values,
        dims=("chain", "draw", "arm", "month"),
        coords={"arm": ["digital", "ptau"], "month": MONTHS},
    )


def test_a_shift_moves_each_arm_mean_by_delta_times_its_weight_and_zero_changes_nothing():
    from alliance.growth import growth_contrasts

    means = fake_means()
    weights = missing_weights(alliance_table(ASSESSED), "patient", MONTHS, "constant")
    grid = delta_grid(GRID)
    shifted = shifted_estimands(means, weights, grid)
    reported = growth_contrasts(means)
    for name in ("marginal_mean", "arm_difference", "change_difference"):
        at_random = shifted[name].sel(delta_digital=0.0, delta_ptau=0.0)
        xr.testing.assert_allclose(
            at_random.drop_vars(["delta_digital", "delta_ptau"]), reported[name]
        )
    moved = shifted["arm_difference"].sel(delta_digital=-0.5, delta_ptau=-1.0)
    expected = reported["arm_difference"] + (
        -0.5 * weights.sel(arm="digital") - (-1.0) * weights.sel(arm="ptau")
    )
    np.testing.assert_allclose(moved.transpose(*expected.dims).values, expected.values)


def detail_rows(means) -> pd.DataFrame:
    """The estimand rows the main report judges (arm and change differences of both raters)."""
    from alliance.growth import growth_contrasts

    rows = []
    for rater, draws in means.items():
        contrasts = growth_contrasts(draws)
        for name in ("arm_difference", "change_difference"):
            labels = {"aim": "a", "estimand": name, "rater": rater}
            rows.append(summarise_draws(contrasts[name], 0.95, 0.2, labels))
    detail = pd.concat(rows, ignore_index=True)
    detail["month"] = detail["month"].map(lambda m: "" if m == "" else str(int(m)))
    return detail


def test_probabilities_move_monotonically_and_the_zero_row_is_the_reported_analysis():
    means = {"patient": fake_means(1), "therapist": fake_means(2, digital=5.4, ptau=5.9)}
    alliance = pd.concat(
        [alliance_table(ASSESSED, "patient").query("rater == 'patient'")]
        + [alliance_table(ASSESSED, "therapist").query("rater == 'therapist'")]
    )
    analysis = tipping_analysis(
        {
            rater: xr.DataTree.from_dict({"estimands": xr.Dataset({"marginal_mean": draws})})
            for rater, draws in means.items()
        },
        alliance,
        MONTHS,
        GRID,
        SUMMARY,
    )
    table = analysis["tables"]["constant"]
    assert len(table) == 11 * 11 * (6 + 1 + 1)
    # The analysis at both deltas 0 equals the main report's rows and verdicts.
    detail = detail_rows(means)
    at_random = table[(table.delta_digital == 0) & (table.delta_ptau == 0)]
    merged = at_random.merge(detail, on=["estimand", "rater", "month"], suffixes=("", "_reported"))
    assert len(merged) == 8
    for column in ("mean", "ci_low", "ci_high"):
        np.testing.assert_allclose(merged[column], merged[f"{column}_reported"], rtol=1e-12)
    assert dict(zip(at_random["finding"], at_random["verdict"], strict=False)) == (
        reported_verdicts(detail)
    )
    # F1 (digital lower): more likely as the digital arm's missing ratings are lower, less
    # likely as PTAU's are; every quantity, along every line of the grid.
    f1 = table[table.finding == "F1"]
    for (_, _), line in f1.groupby(["rater", "month"]):
        surface = line.pivot(
            index="delta_ptau", columns="delta_digital", values="decisive_probability"
        )
        assert (np.diff(surface.to_numpy(), axis=1) <= 1e-12).all()  # digital delta rising
        assert (np.diff(surface.to_numpy(), axis=0) >= -1e-12).all()  # ptau delta rising
    assert analysis["weights"]["share_missing"].between(0, 1).all()


def reported_verdicts(detail) -> dict[str, str]:
    """The main report's verdicts on F1 to F3 (alliance.findings) from a detail table."""
    from alliance.findings import FINDINGS, select_rows, verdict

    return {
        f.key: verdict(select_rows(detail, f.estimand, f.selectors), f.kind, 0.95)[0]
        for f in FINDINGS
        if f.key in ("F1", "F2", "F3")
    }


def test_the_sentence_names_the_delta_at_which_a_verdict_changes():
    rows = []
    for low_digital in delta_grid(GRID):
        for low_ptau in delta_grid(GRID):
            changed = low_ptau <= -0.3 + 1e-9
            rows.append(
                {
                    "finding": "F3",
                    "delta_digital": low_digital,
                    "delta_ptau": low_ptau,
                    "decisive_probability": 0.9 if changed else 0.99,
                    "verdict": "weakened" if changed else "supported",
                }
            )
    sentence = tipping_sentence(pd.DataFrame(rows), "F3")
    assert sentence.startswith("F3 (supported under missing at random) becomes weakened if PTAU's")
    assert "0.3 points below their prediction" in sentence
    assert "digital arm's missing ratings up to 1 point below" in sentence
    half = tipping_sentence(
        pd.DataFrame(rows).assign(delta_digital=lambda d: d.delta_digital / 4), "F3"
    )
    assert "up to 0.25 points below" in half
    assert "PTAU having no missing ratings" in tipping_sentence(
        pd.DataFrame(rows), "F3", no_missing=["ptau"]
    )
    growing = tipping_sentence(pd.DataFrame(rows), "F3", "growing")
    assert "for each assessment since their last rating" in growing


def shifted_truth(complete, assessed: pd.DataFrame, shift: dict, variant: str, instrument):
    """The trial's true arm differences of the patients' ratings, every randomised patient
    counted: an observed rating as it is, a missing one as the answers the patient would have
    given, each item moved ``shift[arm]`` points lower on the keyed scale (times the assessments
    since the last rating, ``growing``) and kept within the scale, then scored."""
    from alliance.scoring import WaiInstrument, score_wai

    scale = WaiInstrument.from_config(instrument)
    wai = complete.wai[complete.wai["rater"] == "patient"].reset_index(drop=True)
    arm_of = complete.patients.set_index("patient_id")["arm"]
    arm = wai["patient_id"].map(arm_of)
    counts = visits_since_last_observed(assessed).stack().rename("missed")
    missed = wai.join(counts, on=["patient_id", "month"])["missed"].to_numpy()
    steps = missed if variant == "growing" else (missed > 0).astype(float)
    delta = arm.map(shift).to_numpy() * steps
    items = wai[scale.columns].to_numpy(dtype=float)
    keyed_down = np.ones(items.shape[1])
    keyed_down[[number - 1 for number in scale.reverse_keyed]] = -1  # reverse-keyed: raw up
    moved = np.clip(items + delta[:, None] * keyed_down, scale.response_min, scale.response_max)
    wai[scale.columns] = moved
    totals = score_wai(wai, scale)["wai_total"].to_numpy()
    means = pd.DataFrame({"arm": arm, "month": wai["month"], "total": totals})
    means = means.groupby(["arm", "month"])["total"].mean().unstack("arm")
    return (means["digital"] - means["ptau"]).to_dict()


@pytest.mark.slow
def test_at_the_true_shift_the_analysis_recovers_what_missing_at_random_misses(tmp_path):
    """Ratings missing not at random by a known shift, in a trial of 400 patients: dropout for
    good that depends on the patient's previous rating (the twin's monotone, at-random dropout),
    and each missing rating the patient would have given lower than that (every item moved down
    by the shift on the keyed scale, kept within 1 to 7). The truth is the trial's own mean over
    every randomised patient, observed ratings as observed and missing ones as they would have
    been; the model and the scale's limits are not the analysis's. At the true shift the patient
    rating's arm differences cover it, constant and growing shifts; at missing at random the
    month-12 difference misses it (seed fixed in advance; 5, 6, 7 and 8 were run)."""
    from alliance.analysis_tables import build_analysis_tables
    from alliance.growth import build_growth_model, growth_data, marginal_means
    from alliance.input_data import read_trial_data
    from alliance.sampling import fit_bambi
    from alliance.settings import load_config
    from alliance.tipping_points import quantity_summary
    from alliance.twin import simulate_complete_and_observed, write_input_files

    seed = 5
    config = load_config(
        {
            "sampling": {"chains": 2, "draws": 500, "tune": 500},
            "synthetic_twin": {
                "n_patients": 400,
                "dropout_pattern": "monotone",
                "dropout_mechanism": "mar",
                "dropout_strength": 1.0,
            },
        }
    )
    instrument = config["instrument"]
    complete, observed = simulate_complete_and_observed(config, seed)
    write_input_files(observed, tmp_path)
    alliance = build_analysis_tables(read_trial_data(tmp_path, config), instrument)["alliance"]
    spec = config["growth"]["models"][config["growth"]["reported_model"]]
    data = growth_data(alliance, "patient", instrument)
    model = build_growth_model(data, spec, config["growth"]["priors"])
    means = marginal_means(model, fit_bambi(model, config["sampling"], seed=11), spec, instrument)
    patient = alliance[alliance["rater"] == "patient"]
    assessed = patient.pivot_table(
        index="patient_id", columns="month", values="assessed", aggfunc="any"
    )[MONTHS]
    grid = delta_grid({"lowest": -1.0, "highest": 0.0, "step": 0.25})

    def interval(variant, low_digital, low_ptau, month):
        weights = missing_weights(alliance, "patient", MONTHS, variant)
        shifted = shifted_estimands(means, weights, grid)["arm_difference"]
        point = shifted.sel(month=month, delta_digital=low_digital, delta_ptau=low_ptau)
        return quantity_summary(point, 0.95, 0.2).iloc[0]

    for variant, shift in (
        ("constant", {"digital": -1.0, "ptau": -0.5}),
        ("growing", {"digital": -0.5, "ptau": 0.0}),
    ):
        truth = shifted_truth(complete, assessed, shift, variant, instrument)
        for month in MONTHS:
            at_true = interval(variant, shift["digital"], shift["ptau"], month)
            assert at_true["ci_low"] < truth[month] < at_true["ci_high"], (variant, month, truth)
    truth = shifted_truth(
        complete, assessed, {"digital": -1.0, "ptau": 0.0}, "constant", instrument
    )
    at_random = interval("constant", 0.0, 0.0, 12)
    assert at_random["ci_low"] > truth[12], (truth, at_random)  # overstates the digital arm
    at_true = interval("constant", -1.0, 0.0, 12)
    assert at_true["ci_low"] < truth[12] < at_true["ci_high"], (truth, at_true)


@pytest.mark.slow
def test_the_workflow_writes_the_contract_table_and_its_zero_row_is_the_reported_analysis(
    completed_run,
):
    from alliance.tipping_points import TIPPING_COLUMNS

    table = pd.read_csv(
        completed_run / "results/tables/tipping_points.csv",
        dtype={"month": str},
        keep_default_na=False,
    )
    assert list(table.columns) == TIPPING_COLUMNS
    assert len(table) == 11 * 11 * (6 + 1 + 1)
    assert set(table["verdict"]) <= {"supported", "weakened", "contradicted"}
    detail = pd.read_csv(
        completed_run / "results/tables/estimands_detail.csv",
        dtype={"month": str},
        keep_default_na=False,
    )
    at_random = table[(table.delta_digital == 0) & (table.delta_ptau == 0)]
    merged = at_random.merge(detail, on=["estimand", "rater", "month"], suffixes=("", "_reported"))
    assert len(merged) == 8
    for column in ("mean", "ci_low", "ci_high"):
        np.testing.assert_allclose(
            merged[column].astype(float), merged[f"{column}_reported"].astype(float), rtol=1e-9
        )
    findings = pd.read_csv(completed_run / "results/tables/findings.csv").set_index("finding")
    for finding, verdict in at_random.groupby("finding")["verdict"].first().items():
        assert verdict == findings.loc[finding, "verdict"]
    html = (completed_run / "results/report.html").read_text()
    sentences = pd.read_csv(completed_run / "results/tables/tipping_point_sentences.csv")
    assert len(sentences) == 6
    for sentence in sentences["sentence"]:
        assert sentence.replace("'", "&#39;") in html
