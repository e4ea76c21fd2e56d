"""The synthetic twin of the trial: input files in the data contract's format, from the seed.

Alliance is generated as a latent score per patient, assessment and rater (arm-specific level
and change, correlated patient-level effects, therapists nested in centres, digital-arm covariate
effects), then as twelve item answers rounded and clipped to the response scale, so that reverse
keys, pro-rating and the ceiling are real. The assumed values come from ``synthetic_twin`` in the
config, nowhere else.

The twin's true estimands, on the observed-score scale the models work on, are computed by
simulating a large population from the same generator without missing data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alliance.analysis_tables import digital_covariates
from alliance.design import (
    ARMS,
    ASSOCIATION_TERMS,
    RATERS,
    REFERENCE_ARM,
    TERM_COLUMNS,
    TREATMENT_ARM,
    time_code,
)
from alliance.scoring import SUS_ITEMS, WaiInstrument, score_wai
from alliance.settings import plain


@dataclass
class SimulatedTrial:
    """Complete (no missing data) simulated trial, in contract columns."""

    patients: pd.DataFrame
    wai: pd.DataFrame
    digital: pd.DataFrame


@dataclass
class Twin:
    """The twin's three input files (with missing data) and its true estimands."""

    patients: pd.DataFrame
    wai: pd.DataFrame
    digital: pd.DataFrame
    truth: dict


def _patient_effects(twin: Mapping, n: int, rng: np.random.Generator) -> np.ndarray:
    """Patient-level (level, change) per rater: columns p_level, p_change, t_level, t_change."""
    sd = np.array(
        [
            twin["patient_level_sd"]["patient"],
            twin["patient_change_sd"]["patient"],
            twin["patient_level_sd"]["therapist"],
            twin["patient_change_sd"]["therapist"],
        ]
    )
    corr = np.eye(4)
    corr[0, 1] = corr[1, 0] = corr[2, 3] = corr[3, 2] = twin["level_change_correlation"]
    corr[0, 2] = corr[2, 0] = twin["rater_level_correlation"]
    corr[1, 3] = corr[3, 1] = twin["rater_change_correlation"]
    cov = corr * np.outer(sd, sd)
    return rng.multivariate_normal(np.zeros(4), cov, size=n, method="eigh")


def simulate_trial(
    twin: Mapping,
    instrument: Mapping,
    n_patients: int,
    centres: list[str],
    centre_shares: list[float],
    rng: np.random.Generator,
) -> SimulatedTrial:
    """Simulate complete data for ``n_patients`` from the twin's assumed parameters."""
    months = list(instrument["months"])
    wai = WaiInstrument.from_config(instrument)
    n_digital = int(round(n_patients * twin["share_digital"]))

    # Patients: centre, randomised arm, therapist nested in centre x arm, age.
    shares = np.asarray(centre_shares, dtype=float) / np.sum(centre_shares)
    centre_index = rng.choice(len(centres), size=n_patients, p=shares)
    arm = np.where(rng.permutation(n_patients) < n_digital, TREATMENT_ARM, REFERENCE_ARM)
    k = twin["therapists_per_centre_arm"]
    slot = rng.integers(0, k, size=n_patients)
    arm_index = (arm == REFERENCE_ARM).astype(int)
    therapist_index = (centre_index * 2 + arm_index) * k + slot
    n_therapists = len(centres) * 2 * k
    width = len(str(n_patients))
    age = np.clip(np.round(rng.normal(twin["age_mean"], twin["age_sd"], n_patients)), 25, 85)
    patients = pd.DataFrame(
        {
            "patient_id": [f"P{i + 1:0{width}d}" for i in range(n_patients)],
            "centre": np.asarray(centres)[centre_index],
            "arm": arm,
            "therapist_id": [f"T{t + 1:03d}" for t in therapist_index],
            "age": age.astype(int),
        }
    )

    # Random effects.
    patient_effects = _patient_effects(twin, n_patients, rng)
    therapist_effect = {
        r: rng.normal(0, twin["therapist_sd"][r], n_therapists)[therapist_index] for r in RATERS
    }
    centre_effect = {
        r: rng.normal(0, twin["centre_sd"][r], len(centres))[centre_index] for r in RATERS
    }

    # Digital-arm covariates at every assessment, and their effects on latent alliance.
    digital, covariate_shift = _simulate_covariates(twin, patients, months, rng)

    # Latent alliance per patient x month x rater, then items.
    n_months = len(months)
    tau = time_code(np.tile(months, n_patients), months)
    index = np.repeat(np.arange(n_patients), n_months)
    resid_corr = twin["residual_correlation"]
    resid_sd = np.array([twin["residual_sd"][r] for r in RATERS])
    resid_cov = np.array([[1, resid_corr], [resid_corr, 1]]) * np.outer(resid_sd, resid_sd)
    residual = rng.multivariate_normal(np.zeros(2), resid_cov, size=n_patients * n_months)
    offsets = rng.normal(0, twin["item_offset_sd"], wai.n_items)
    offsets -= offsets.mean()

    # Edge case: patients who answer the top of the scale (7) to every item of their own form,
    # reverse-keyed ones included.
    all_top = _chosen(rng, np.ones(n_patients, dtype=bool), twin.get("share_all_top", 0))

    frames = []
    for r_index, rater in enumerate(RATERS):
        treated = arm == TREATMENT_ARM
        intercept, slope = twin["intercept"][rater], twin["change"][rater]
        level = np.where(treated, intercept[TREATMENT_ARM], intercept[REFERENCE_ARM])
        change = np.where(treated, slope[TREATMENT_ARM], slope[REFERENCE_ARM])
        latent = (
            level[index]
            + change[index] * tau
            + patient_effects[index, 2 * r_index]
            + patient_effects[index, 2 * r_index + 1] * tau
            + therapist_effect[rater][index]
            + centre_effect[rater][index]
            + covariate_shift[rater]
            + residual[:, r_index]
        )
        noise = rng.normal(0, twin["item_noise_sd"], (latent.size, wai.n_items))
        scored = np.clip(
            np.round(latent[:, None] + offsets[None, :] + noise),
            wai.response_min,
            wai.response_max,
        )
        answers = scored.copy()
        flip = wai.response_min + wai.response_max
        for item in wai.reverse_keyed:
            answers[:, item - 1] = flip - scored[:, item - 1]
        if rater == "patient" and all_top.any():
            # Straight-lining at the top: every answer 7, reverse-keyed items included.
            answers[all_top[index]] = wai.response_max
        frame = pd.DataFrame(answers.astype(int), columns=wai.columns)
        frame.insert(0, "rater", rater)
        frame.insert(0, "month", np.tile(months, n_patients))
        frame.insert(0, "patient_id", patients["patient_id"].to_numpy()[index])
        frames.append(frame)
    wai_frame = (
        pd.concat(frames, ignore_index=True)
        .sort_values(["patient_id", "month", "rater"], kind="stable")
        .reset_index(drop=True)
    )
    return SimulatedTrial(patients=patients, wai=wai_frame, digital=digital)


def _simulate_covariates(
    twin: Mapping, patients: pd.DataFrame, months: list[int], rng: np.random.Generator
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Digital-arm covariates per patient x month, and each rater's latent shift from them.

    The shift is the sum over terms of effect x (observed covariate standardized); it is zero in
    the PTAU arm, where no covariates are measured.
    """
    n_patients, n_months = len(patients), len(months)
    is_digital = (patients["arm"] == TREATMENT_ARM).to_numpy()
    stable = twin["covariate_stability"]

    def correlated_scores(rho: float) -> np.ndarray:
        """Two standard normal scores per patient x month, stable share within patient."""
        corr = np.array([[1.0, rho], [rho, 1.0]])
        between = rng.multivariate_normal(np.zeros(2), corr, size=n_patients)
        within = rng.multivariate_normal(np.zeros(2), corr, size=n_patients * n_months)
        return np.sqrt(stable) * np.repeat(between, n_months, axis=0) + np.sqrt(1 - stable) * within

    z_sus_app = correlated_scores(twin["sus_vas_app_correlation"])
    z_platform = correlated_scores(0.0)[:, 0]
    sus_target = np.clip(twin["sus_mean"] + twin["sus_sd"] * z_sus_app[:, 0], 0, 100)
    contribution = np.clip(
        np.round(sus_target[:, None] / 25 + rng.normal(0, 0.5, (sus_target.size, 10))), 0, 4
    )
    sus_items = np.where(np.arange(10) % 2 == 0, contribution + 1, 5 - contribution).astype(int)

    def vas(mean: float, sd: float, z: np.ndarray) -> np.ndarray:
        return np.round(np.clip(mean + sd * z, 0, 10), 1)

    def counts(mean: float) -> np.ndarray:
        size = twin["count_dispersion"]
        return rng.negative_binomial(size, size / (size + mean), n_patients * n_months)

    frame = pd.DataFrame(sus_items, columns=SUS_ITEMS)
    frame.insert(0, "month", np.tile(months, n_patients))
    frame.insert(0, "patient_id", np.repeat(patients["patient_id"].to_numpy(), n_months))
    frame["vas_app"] = vas(twin["vas_app_mean"], twin["vas_app_sd"], z_sus_app[:, 1])
    frame["vas_platform"] = vas(twin["vas_platform_mean"], twin["vas_platform_sd"], z_platform)
    frame["n_messages"] = counts(twin["messages_mean"])
    frame["n_calls"] = counts(twin["calls_mean"])
    frame["n_visits"] = counts(twin["visits_mean"])
    # Edge case: digital-arm patients with no communication at all (their share of asynchronous
    # messages is undefined).
    silent = _chosen(rng, is_digital, twin.get("share_no_communication", 0))
    frame.loc[np.repeat(silent, n_months), ["n_messages", "n_calls", "n_visits"]] = 0

    predictors = association_predictors(frame, patients)
    reference = {
        "age": (twin["age_mean"], twin["age_sd"]),
        "sus": (twin["sus_mean"], twin["sus_sd"]),
        "vas_app": (twin["vas_app_mean"], twin["vas_app_sd"]),
        "vas_platform": (twin["vas_platform_mean"], twin["vas_platform_sd"]),
    }
    row_is_digital = np.repeat(is_digital, n_months)
    shift = {}
    for rater in RATERS:
        total = np.zeros(len(frame))
        for term, effect in twin["effects"][rater].items():
            values = predictors[term].to_numpy(dtype=float)
            if term in reference:
                mean, sd = reference[term]
            else:  # no assumed scale: standardize within the digital arm
                mean, sd = np.nanmean(values[row_is_digital]), np.nanstd(values[row_is_digital])
            z = np.nan_to_num((values - mean) / sd)
            total += effect * z
        shift[rater] = np.where(row_is_digital, total, 0.0)
    return frame[row_is_digital].reset_index(drop=True), shift


def _chosen(rng: np.random.Generator, eligible: np.ndarray, share: float) -> np.ndarray:
    """A random ``share`` of the ``eligible`` patients (a mask); draws nothing when the share is
    0, so the calibrated twin does not change with the edge-case settings."""
    chosen = np.zeros(len(eligible), dtype=bool)
    if share > 0:
        candidates = np.flatnonzero(eligible)
        size = int(round(share * len(candidates)))
        chosen[rng.choice(candidates, size=size, replace=False)] = True
    return chosen


def association_predictors(digital: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    """The aim (c) predictors on their analysis scale, one row per row of ``digital``.

    ``comm_amount`` enters on the log(1 + amount) scale, as in the association models.
    """
    table = digital_covariates(digital, patients).set_axis(digital.index)
    terms = list(dict.fromkeys(term for terms in ASSOCIATION_TERMS.values() for term in terms))
    return pd.DataFrame({term: table[TERM_COLUMNS.get(term, term)] for term in terms})


def apply_missingness(
    trial: SimulatedTrial,
    twin: Mapping,
    rng: np.random.Generator,
    instrument: Mapping | None = None,
) -> SimulatedTrial:
    """Missing assessments (growing over follow-up), missing forms, answers and covariates.

    Assessments are missing completely at random by default; ``twin["dropout_mechanism"]``
    ``mar`` or ``mnar`` makes them depend on the patient's own ratings
    (:func:`dropout_log_odds_shift`; needs ``instrument`` to score them)."""
    patients, wai, digital = trial.patients, trial.wai.copy(), trial.digital.copy()
    arm_of = dict(zip(patients.patient_id, patients.arm, strict=True))
    items = [column for column in wai.columns if column.startswith("item_")]

    # Assessment-level: a patient x month is missing for both raters.
    visits = wai[["patient_id", "month"]].drop_duplicates().reset_index(drop=True)
    p_missing = np.array(
        [
            _by_month(twin["missing_assessment"][arm_of[pid]], month)
            for pid, month in visits.itertuples(index=False)
        ]
    )
    mechanism = twin.get("dropout_mechanism", "mcar")
    shift = None
    if mechanism != "mcar":  # the calibrated (completely at random) twin draws nothing more
        shift = dropout_log_odds_shift(
            visits,
            patient_totals(trial, instrument),
            mechanism,
            twin.get("dropout_strength", 0.0),
        )
    visits["missing"] = rng.random(len(visits)) < _shifted(p_missing, shift)
    if twin.get("dropout_pattern", "intermittent") == "monotone":
        visits["missing"] = _monotone_missing(visits, p_missing, rng, shift)
    single = _chosen(
        rng, np.ones(len(patients), dtype=bool), twin.get("share_single_assessment", 0)
    )
    if single.any():
        visits["missing"] = _single_assessment(visits, patients["patient_id"][single], rng)
    visits["as_empty_row"] = rng.random(len(visits)) < twin["share_missing_as_empty_row"]
    wai = wai.merge(visits, on=["patient_id", "month"], how="left")
    form_missing = rng.random(len(wai)) < wai["rater"].map(twin["missing_rater"]).to_numpy()
    answer_missing = rng.random((len(wai), len(items))) < twin["missing_item"]
    values = wai[items].to_numpy(dtype=float, copy=True)
    values[answer_missing] = np.nan
    values[(wai["missing"] | form_missing).to_numpy()] = np.nan
    wai[items] = values
    drop = wai["missing"] & ~wai["as_empty_row"]
    wai = wai.loc[~drop, ["patient_id", "month", "rater", *items]]
    wai[items] = wai[items].astype("Int64")

    # Digital covariates only where the assessment took place.
    held = visits.loc[~visits["missing"], ["patient_id", "month"]]
    digital = digital.merge(held, on=["patient_id", "month"], how="inner")
    sus = digital[SUS_ITEMS].to_numpy(dtype=float, copy=True)
    sus[rng.random(sus.shape) < twin["missing_item"]] = np.nan
    digital[SUS_ITEMS] = pd.DataFrame(sus, index=digital.index).astype("Int64").to_numpy()
    for column in ["vas_app", "vas_platform", "n_messages", "n_calls", "n_visits"]:
        mask = rng.random(len(digital)) < twin["missing_covariate"]
        digital[column] = digital[column].astype("Float64" if "vas" in column else "Int64")
        digital.loc[mask, column] = pd.NA
    for column in SUS_ITEMS:
        digital[column] = digital[column].astype("Int64")
    return SimulatedTrial(
        patients=patients,
        wai=wai.reset_index(drop=True),
        digital=digital.reset_index(drop=True),
    )


def patient_totals(trial: SimulatedTrial, instrument: Mapping) -> pd.Series:
    """Each patient's own (patient-rated) WAI total per month of the complete trial, indexed by
    (patient_id, month): what a dropout mechanism may depend on."""
    own = trial.wai[trial.wai["rater"] == "patient"]
    totals = score_wai(own, WaiInstrument.from_config(instrument))["wai_total"].to_numpy()
    return pd.Series(totals, index=pd.MultiIndex.from_frame(own[["patient_id", "month"]]))


def dropout_log_odds_shift(
    visits: pd.DataFrame, totals: pd.Series, mechanism: str, strength: float
) -> np.ndarray:
    """The shift of each visit's log-odds of being missing under a dropout mechanism.

    ``mar`` (at random): ``-strength`` per point of the patient's own rating at the previous
    month above that month's mean (no shift at the first month, which has no previous rating);
    ``mnar`` (not at random): the same on the rating of the visit itself, which goes unobserved
    when it is missing. Centring on the month's mean keeps the share missing near the configured
    one; with ``strength`` > 0 patients with weak alliance drop out more.
    """
    if mechanism not in ("mar", "mnar"):
        raise ValueError(f"unknown dropout mechanism {mechanism!r}; choose mcar, mar or mnar")
    frame = visits[["patient_id", "month"]].copy()
    frame["total"] = totals.reindex(pd.MultiIndex.from_frame(frame)).to_numpy()
    if mechanism == "mar":
        frame = frame.sort_values(["patient_id", "month"])
        frame["total"] = frame.groupby("patient_id")["total"].shift(1)
        frame = frame.sort_index()
    centred = frame["total"] - frame.groupby("month")["total"].transform("mean")
    return (-float(strength) * centred.fillna(0.0)).to_numpy()


def _shifted(probability: np.ndarray, shift: np.ndarray | None) -> np.ndarray:
    """``probability`` with its log-odds moved by ``shift`` and then, among the rows that share a
    probability (an arm and month), by the constant that keeps their mean probability what it
    was: a dropout mechanism changes who is missing, not how many."""
    from scipy.optimize import brentq
    from scipy.special import expit, logit

    p = np.asarray(probability, dtype=float)
    if shift is None:
        return p
    shifted = p.copy()
    for value in np.unique(p):
        rows = p == value
        if not 0 < value < 1:
            continue

        def excess(constant, rows=rows, value=value):
            return expit(logit(value) + shift[rows] + constant).mean() - value

        constant = brentq(excess, -50, 50)
        shifted[rows] = expit(logit(value) + shift[rows] + constant)
    return shifted


def _monotone_missing(
    visits: pd.DataFrame, p_missing: np.ndarray, rng, shift: np.ndarray | None = None
) -> np.ndarray:
    """Dropout: a patient missing at one month is missing at every later month, and the share
    missing by each month is ``p_missing`` (the hazard of dropping out at a month is the rise in
    that share over the surviving patients). ``shift``: each visit's log-odds shift of the hazard
    (:func:`dropout_log_odds_shift`), for dropout that depends on the ratings."""
    order = visits.sort_values(["patient_id", "month"]).index
    hazard = np.zeros(len(visits))
    previous_id, previous_p = None, 0.0
    for row in order:
        patient, p = visits.at[row, "patient_id"], float(p_missing[row])
        if patient != previous_id:
            previous_id, previous_p = patient, 0.0
        hazard[row] = max(0.0, p - previous_p) / max(1e-12, 1.0 - previous_p)
        previous_p = max(previous_p, p)
    hazard = _shifted(hazard, shift)
    missing = np.zeros(len(visits), dtype=bool)
    previous_id, gone = None, False
    for row in order:
        patient = visits.at[row, "patient_id"]
        if patient != previous_id:
            previous_id, gone = patient, False
        gone = gone or rng.random() < hazard[row]
        missing[row] = gone
    return missing


def _single_assessment(visits: pd.DataFrame, chosen_ids: pd.Series, rng) -> np.ndarray:
    """Missingness in which each chosen patient is assessed at one random month only."""
    missing = visits["missing"].to_numpy(copy=True)
    for patient in chosen_ids:
        rows = np.flatnonzero((visits["patient_id"] == patient).to_numpy())
        missing[rows] = True
        missing[rng.choice(rows)] = False
    return missing


def _by_month(table: Mapping, month: int) -> float:
    return float(table[month] if month in table else table[str(month)])


def true_estimands(twin: Mapping, instrument: Mapping, rng: np.random.Generator) -> list[dict]:
    """The twin's true estimands on the observed-score scale, from a large complete simulation.

    Rows follow the data contract's estimand table (``value`` in place of posterior columns).
    ``rater_correlation`` is the latent correlation of patient-level alliance across raters.
    """
    months = list(instrument["months"])
    n = int(twin["truth_population"])
    n_centres = 100 * len(twin["centres"])
    population = simulate_trial(
        twin,
        instrument,
        n,
        centres=[f"c{j}" for j in range(n_centres)],
        centre_shares=[1.0] * n_centres,
        rng=rng,
    )
    wai = WaiInstrument.from_config(instrument)
    scores = population.wai[["patient_id", "month", "rater"]].join(
        score_wai(population.wai, wai)[["wai_total"]]
    )
    scores["arm"] = scores["patient_id"].map(
        dict(zip(population.patients.patient_id, population.patients.arm, strict=True))
    )
    means = scores.groupby(["rater", "arm", "month"])["wai_total"].mean()
    first, last = months[0], months[-1]
    rows: list[dict] = []

    def add(aim, estimand, value, rater="", arm="", month="", term=""):
        rows.append(
            {
                "aim": aim,
                "estimand": estimand,
                "rater": rater,
                "arm": arm,
                "month": month,
                "term": term,
                "value": float(value),
            }
        )

    for rater in RATERS:
        for arm in ARMS:
            for month in months:
                add("a", "marginal_mean", means[(rater, arm, month)], rater, arm, month)
        for month in months:
            diff = means[(rater, TREATMENT_ARM, month)] - means[(rater, REFERENCE_ARM, month)]
            add("a", "arm_difference", diff, rater, month=month)
        change = {arm: means[(rater, arm, last)] - means[(rater, arm, first)] for arm in ARMS}
        add("a", "change_difference", change[TREATMENT_ARM] - change[REFERENCE_ARM], rater)

    paired = scores.pivot_table(
        index=["patient_id", "arm", "month"], columns="rater", values="wai_total"
    ).reset_index()
    for arm in ARMS:
        add("b", "rater_correlation", twin["rater_level_correlation"], arm=arm)
        bias = np.mean([means[("patient", arm, m)] - means[("therapist", arm, m)] for m in months])
        add("b", "rater_bias", bias, arm=arm)
        icc = [
            concordance(
                *paired.loc[(paired.arm == arm) & (paired.month == m), list(RATERS)].T.values
            )
            for m in months
        ]
        add("b", "icc_agreement", np.mean(icc), arm=arm)

    predictors = association_predictors(population.digital, population.patients)
    design = pd.concat([population.digital[["patient_id", "month"]], predictors], axis=1)
    for rater in RATERS:
        terms = list(ASSOCIATION_TERMS[rater])
        data = design.merge(
            scores[scores.rater == rater][["patient_id", "month", "wai_total"]],
            on=["patient_id", "month"],
        ).dropna()
        for term, value in zip(terms, population_slopes(data, terms, months), strict=True):
            add("c", "association", value, rater, term=term)
    return rows


def concordance(x: np.ndarray, y: np.ndarray) -> float:
    """Absolute-agreement ICC of a single rating for two raters (Lin's concordance)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return float(2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2))


def population_slopes(data: pd.DataFrame, terms: list[str], months: list[int]) -> np.ndarray:
    """Least-squares slopes of ``wai_total`` per 1 SD of each term, with one mean per month."""
    z = (data[terms] - data[terms].mean()) / data[terms].std()
    month_dummies = pd.get_dummies(data["month"], dtype=float)
    design = np.column_stack([z.to_numpy(), month_dummies.to_numpy()])
    coef, *_ = np.linalg.lstsq(design, data["wai_total"].to_numpy(), rcond=None)
    return coef[: len(terms)]


def simulate_complete_and_observed(
    config: Mapping, seed: int
) -> tuple[SimulatedTrial, SimulatedTrial]:
    """One trial of the config's twin before and after its missing data (the complete trial holds
    every answer a missing rating would have had)."""
    from alliance.seeds import rng_for

    twin, instrument = config["synthetic_twin"], config["instrument"]
    complete = simulate_trial(
        twin,
        instrument,
        twin["n_patients"],
        centres=list(twin["centres"]),
        centre_shares=list(twin["centre_shares"]),
        rng=rng_for(seed, "twin", "trial"),
    )
    observed = apply_missingness(complete, twin, rng_for(seed, "twin", "missingness"), instrument)
    return complete, observed


def simulate_observed(config: Mapping, seed: int) -> SimulatedTrial:
    """One trial of the config's twin with its missing data, without the true estimands (which
    depend on the twin's assumed values only): a replicate of the validation study."""
    return simulate_complete_and_observed(config, seed)[1]


def generate_twin(config: Mapping, seed: int | None = None) -> Twin:
    """The twin's input files and true estimands for the config's ``synthetic_twin`` and seed."""
    from alliance.seeds import rng_for

    master = config["seed"] if seed is None else seed
    twin = config["synthetic_twin"]
    observed = simulate_observed(config, master)
    truth = {
        "description": (
            "True values of the synthetic twin. 'estimands' are on the observed-score scale "
            "(item-scale points), computed from a complete simulation of "
            f"{twin['truth_population']} patients; 'assumptions' are the generator's parameters."
        ),
        "seed": int(master),
        "assumptions": plain(twin),
        "estimands": true_estimands(twin, config["instrument"], rng_for(master, "twin", "truth")),
    }
    return Twin(observed.patients, observed.wai, observed.digital, truth)


def write_input_files(twin: Twin | SimulatedTrial, folder) -> None:
    """Write ``patients.csv``, ``wai.csv`` and ``digital.csv`` in the contract's format."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (("patients", twin.patients), ("wai", twin.wai), ("digital", twin.digital)):
        frame.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
