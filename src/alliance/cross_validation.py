"""Model choice for aim (a): leave-patient-out K-fold cross-validation of the growth models of the
WAI totals.

Pointwise PSIS-LOO leaves out one assessment while the patient's other assessments stay in, and
with at most three assessments and two effects per patient its importance weights are unreliable
(25-35 high Pareto k values per model). The question a growth model answers is about new
patients, so the unit left out is the patient: the patients are split into K folds (within each
arm, at random), each fold's patients are left out in turn, the model is refitted on the others,
and each left-out patient's assessments are predicted jointly:

    elpd_i = log p(y_i | y_-fold(i)) = log mean_s p(y_i | theta_s, b_i,s)

where theta_s is a posterior draw of the refit and b_i,s the patient's effects drawn from their
population distribution at that draw (brms' ``kfold`` with new levels sampled from their
Gaussian); :data:`EFFECT_DRAWS` draws of b per posterior draw, so that the Monte Carlo error of
this integral over the patient's effects stays small beside the differences between models. For
a Gaussian model the integral over b_i is exact: p(y_i | theta_s) is the multivariate normal
density of the patient's totals with their effects integrated out
(:meth:`alliance.refit.MarginalGrowthModel.patient_log_density`), so only the mean over draws
is Monte Carlo.
A left-out patient's therapist keeps their estimated effect (folds are dealt within arms, not
within therapists; a therapist whose patients all fell in one fold would get an effect from the
prior, which the model allows). Every fold refits one compiled model
(:func:`alliance.refit.compile_growth_model`), whose effects are indexed by every patient, so
that a left-out patient's effects are not informed by any data.

Models are compared by the sum of elpd_i and, paired by patient, the SE of the difference. A
censored likelihood's elpd includes probability masses (totals at the ceiling), not densities, so
it is compared only with its own kind, as with LOO.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.special import logsumexp

#: Draws of a left-out patient's effects per posterior draw (standard-normal offsets scaled by
#: the draw's SDs): with one, the log predictive density of a patient whose assessments pin
#: their effects down rests on a handful of draws.
EFFECT_DRAWS = 20


def with_new_patient_effects(posterior, patients: list, rng: np.random.Generator, copies: int):
    """``posterior`` repeated ``copies`` times along ``draw``, each copy with fresh
    standard-normal offsets for ``patients`` in every patient-level effect (variables
    ``*_offset`` on the patient factor's dimension): draws of new patients' effects from their
    population distribution, the model's other parameters held at each posterior draw."""
    import xarray as xr

    dim = "patient_id__factor_dim"
    draws = posterior.sizes["draw"]
    chosen = {str(patient) for patient in patients}
    variables = {}
    for name, values in posterior.data_vars.items():
        repeated = np.concatenate([values.to_numpy()] * copies, axis=values.get_axis_num("draw"))
        if name.endswith("_offset") and dim in values.dims:
            where = [slice(None)] * values.ndim
            where[values.get_axis_num(dim)] = np.isin(
                values[dim].to_numpy().astype(str), list(chosen)
            )
            repeated[tuple(where)] = rng.standard_normal(repeated[tuple(where)].shape)
        variables[name] = (values.dims, repeated)
    coords = {name: values for name, values in posterior.coords.items() if name != "draw"}
    draw = np.concatenate([posterior["draw"].to_numpy() + copy * draws for copy in range(copies)])
    return xr.Dataset(variables, coords={**coords, "draw": draw})


def patient_folds(data: pd.DataFrame, k: int, seed: int) -> pd.Series:
    """Each patient's fold (0 ... k - 1), indexed by patient: the patients of each arm in a
    random order, dealt round the folds (so every fold has patients of both arms, and fold sizes
    differ by at most one within an arm)."""
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, not {k}")
    patients = data.drop_duplicates("patient_id")[["patient_id", "arm"]]
    if len(patients) < k:
        raise ValueError(f"{len(patients)} patients cannot fill {k} folds")
    rng = np.random.default_rng(seed)
    folds = {}
    start = 0
    for _, group in patients.groupby("arm", observed=True, sort=True):
        order = rng.permutation(group["patient_id"].to_numpy())
        for position, patient in enumerate(order):
            folds[patient] = (start + position) % k
        start += len(order)  # the next arm continues the deal where this one stopped
    return pd.Series(folds, name="fold").rename_axis("patient_id").sort_index()


def patient_log_predictive(pointwise: np.ndarray, patient_codes: np.ndarray) -> np.ndarray:
    """log mean_s exp(sum of a patient's observations' log densities at draw s), per patient.

    ``pointwise``: (draws, observations); ``patient_codes``: each observation's patient
    (0 ... n - 1). Returns one value per patient code present, in code order."""
    codes, index = np.unique(patient_codes, return_inverse=True)
    joint = np.zeros((pointwise.shape[0], len(codes)))
    np.add.at(joint.T, index, pointwise.T)
    return logsumexp(joint, axis=0) - np.log(pointwise.shape[0])


def compiled_growth_model(
    data: pd.DataFrame,
    spec: Mapping,
    priors: Mapping,
    upper: float,
    patients: list,
    therapists: list,
    log=None,
    ceiling_capacity: int | None = None,
):
    """A growth model compiled once (:func:`alliance.refit.compile_growth_model`),
    its effects indexed by ``patients`` and ``therapists``: with the trial's (both raters' data
    hold them), one compiled model cross-validates both raters (a censored model then needs the
    trial's ``ceiling_capacity``, :func:`alliance.refit.ceiling_capacity`). Returns (structure,
    compiled); ``data``: one rater's growth data, for the design and the initial values."""
    from alliance.refit import compile_growth_model, growth_structure

    structure = growth_structure(data, spec, priors, patients, therapists, upper, ceiling_capacity)
    return structure, compile_growth_model(structure, data, log)


def kfold_growth(
    data: pd.DataFrame,
    compiled,
    folds: pd.Series,
    sampling: Mapping,
    seed,
    log=None,
) -> pd.DataFrame:
    """Leave-patient-out cross-validation of one growth model on one rater's growth data
    (:func:`alliance.growth.growth_data`): one row per patient with their fold, number of
    assessments and ``elpd`` (log predictive density of their assessments, jointly, from the
    fit without their fold), and the fold fit's largest R-hat and number of divergences.
    ``compiled``: the model compiled once (:func:`compiled_growth_model`, which may serve several
    raters); ``seed(step)`` gives each fold's sampling seed."""
    import pymc as pm

    from alliance.diagnostics import max_rhat
    from alliance.refit import MarginalGrowthModel
    from alliance.sampling import pointwise_log_likelihood

    structure, compiled = compiled
    patients = structure.patients
    fold_of = data["patient_id"].map(folds)
    if fold_of.isna().any():
        raise ValueError("a patient of the data has no fold")
    rows = []
    for fold in sorted(fold_of.unique()):
        training, held_out = data[fold_of != fold], data[fold_of == fold]
        start = time.perf_counter()
        tree = compiled.fit(structure.inputs(training), sampling, seed(f"fold{int(fold)}"))
        sampled = time.perf_counter() - start
        posterior = tree["posterior"].to_dataset()
        fold_checks = {
            "fold_max_rhat": max_rhat(posterior),
            "fold_divergences": int(tree["sample_stats"]["diverging"].sum()),
        }
        held_out_inputs = structure.inputs(held_out)
        codes = held_out_inputs["patient_id_code"]
        if isinstance(compiled, MarginalGrowthModel) and compiled.exact_patient_density:
            # Gaussian: each left-out patient's effects integrated out in closed form.
            joint = compiled.patient_log_density(held_out_inputs, posterior)[:, np.unique(codes)]
            elpd = logsumexp(joint, axis=0) - np.log(joint.shape[0])
        else:
            left_out = sorted(held_out["patient_id"].unique())
            effects_rng = np.random.default_rng(seed(f"fold{int(fold)}-effects"))
            predictive = with_new_patient_effects(posterior, left_out, effects_rng, EFFECT_DRAWS)
            with compiled.model:
                pm.set_data(held_out_inputs)
            pointwise = pointwise_log_likelihood(compiled.model, predictive)["wai_total"]
            values = pointwise.stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()
            elpd = patient_log_predictive(values, codes)
        counts = np.bincount(codes, minlength=len(patients))
        for code, value in zip(np.unique(codes), elpd, strict=True):
            rows.append(
                {
                    "patient_id": patients[code],
                    "fold": int(fold),
                    "n_assessments": int(counts[code]),
                    "elpd": float(value),
                    **fold_checks,
                }
            )
        if log is not None:
            log.info(
                "fold %d: sampled in %.1f s; %d patients left out, elpd %.1f",
                fold,
                sampled,
                len(np.unique(codes)),
                elpd.sum(),
            )
    return pd.DataFrame(rows).sort_values("patient_id").reset_index(drop=True)


def kfold_comparison(
    elpds: Mapping[str, pd.DataFrame], specs: Mapping[str, Mapping], baseline: str
) -> pd.DataFrame:
    """Per model (``elpds``: name -> :func:`kfold_growth` table of one rater): the K-fold ELPD
    and its SE (sum over patients), and for the models with the baseline's likelihood the ELPD
    minus the baseline's and the SE of that difference, paired by patient
    (``elpd_vs_baseline``, ``se_vs_baseline``; positive: predicts new patients better); and the
    divergences of all its fold refits and their largest R-hat."""
    if baseline not in elpds:
        raise ValueError(f"the baseline {baseline!r} was not cross-validated")
    reference = elpds[baseline].set_index("patient_id")
    rows = []
    for name, table in elpds.items():
        values = table.set_index("patient_id")["elpd"]
        row = {
            "model": name,
            "likelihood": specs[name]["likelihood"],
            "elpd_kfold": float(values.sum()),
            "se_kfold": float(np.sqrt(len(values) * values.var(ddof=0))),
            "n_patients": int(len(values)),
            "n_folds": int(table["fold"].nunique()),
            # How the folds' refits sampled (NaN when the table does not say).
            "fold_divergences": (
                int(table.groupby("fold")["fold_divergences"].first().sum())
                if "fold_divergences" in table
                else np.nan
            ),
            "fold_max_rhat": (
                float(table["fold_max_rhat"].max()) if "fold_max_rhat" in table else np.nan
            ),
            "elpd_vs_baseline": np.nan,
            "se_vs_baseline": np.nan,
        }
        if specs[name]["likelihood"] == specs[baseline]["likelihood"]:
            folds = table.set_index("patient_id")["fold"]
            if set(values.index) != set(reference.index) or not folds.equals(
                reference["fold"].loc[folds.index]
            ):
                raise ValueError(f"{name} and {baseline} were cross-validated on other folds")
            difference = values - reference["elpd"].loc[values.index]
            row["elpd_vs_baseline"] = float(difference.sum())
            row["se_vs_baseline"] = float(np.sqrt(len(difference) * difference.var(ddof=0)))
        rows.append(row)
    return pd.DataFrame(rows)
