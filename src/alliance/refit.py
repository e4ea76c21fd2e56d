"""Compile once, fit many: models whose data are inputs, compiled by nutpie once per process and
refitted on each new data set at the cost of sampling alone.

Compiling a model costs far more than sampling it at the validation's size (measured on the
project's machine: the association model 20-90 s to compile and 3 s to sample 2 x 1,000
iterations; the agreement model 10-35 s and 4 s). The simulation study (:mod:`alliance.validation`)
and the simulation-based calibration (:mod:`alliance.sbc`) fit the same model structure to
hundreds of simulated trials, so they build each model once with its data as ``pm.Data`` inputs,
compile it once, and swap the data in (``nutpie``'s ``with_data``) for every fit.

The number of parameters of a compiled model is fixed, so every group-level effect is indexed by
the trial's randomised patients and therapists (not by those who happen to have a rating in one
data set): a patient without a rating has effects drawn from their prior, which leaves the
posterior of every other parameter unchanged. The number of observations may differ from fit to
fit.

The growth models are built with Bambi (formula, priors, prior draws, predictions);
:func:`growth_refit_model` is the same model written in PyMC with data inputs, with Bambi's
parameter names (so the estimand code reads its draws unchanged). Its log density equals the Bambi
model's (a test). The validation's growth fits are these. The workflow's growth fits
(:func:`compile_growth_model`) sample a Gaussian model in its marginal form, the patient effects
integrated out and drawn afterwards from their conditional posterior (:class:`MarginalGrowthModel`:
the same joint posterior, tests), and the censored model in the full form: one fit job per growth
model compiles it once and samples it for both raters
(:func:`alliance.model_fits.fit_growth_models`), as does each cross-validation job for its 20
fold refits (:mod:`alliance.cross_validation`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


class CompiledModel:
    """A PyMC model with ``pm.Data`` inputs, compiled by nutpie once; :meth:`fit` samples it on
    new values of its inputs (same rank; the length of an observation vector may change)."""

    def __init__(self, model, log=None):
        from alliance.function_cache import counts
        from alliance.nutpie_compile import compile_pymc_model

        start = time.perf_counter()
        loaded = counts["loaded"]
        self.model = model
        self.compiled = compile_pymc_model(model)
        self.compile_seconds = time.perf_counter() - start
        self.fits = 0
        if log is not None:
            log.info(
                "compiled a model of %d parameters once in %.1f s (%s)",
                self.compiled.n_dim,
                self.compile_seconds,
                "rewritten graphs from the cache"
                if counts["loaded"] - loaded == 2
                else "graphs rewritten",
            )

    def used(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The inputs the compiled function reads: a data variable of the model that no density
        depends on (e.g. the positions of missing cells where there are none) is not among its
        inputs; a name that is not a data variable of the model is an error."""
        known = {variable.name for variable in self.compiled.shared_var_keys}
        unknown = sorted(set(inputs) - known - set(self.model.named_vars))
        if unknown:
            raise KeyError(f"not data inputs of the model: {', '.join(unknown)}")
        return {name: values for name, values in inputs.items() if name in known}

    def fit(self, inputs: Mapping[str, np.ndarray], sampling: Mapping, seed: int):
        """The posterior and sampler statistics of the model on ``inputs`` (name -> values of its
        ``pm.Data`` variables), sampled as ``sampling`` says (chains, draws kept per chain,
        ``thin``, tune, target_accept), one chain after another."""
        import nutpie

        from alliance.sampling import thinned

        thin = self.thin(sampling)
        tree = nutpie.sample(
            self.compiled.with_data(**self.used(inputs)),
            draws=int(sampling["draws"]) * thin,
            tune=int(sampling["tune"]),
            chains=int(sampling["chains"]),
            cores=1,
            seed=int(seed),
            target_accept=float(sampling["target_accept"]),
            save_warmup=False,
            progress_bar=False,
        )
        self.fits += 1
        return thinned(tree, thin)

    def thin(self, sampling: Mapping) -> int:
        """Every how many draws one is kept (``sampling``'s ``thin``)."""
        return int(sampling.get("thin", 1))


def trial_levels(alliance: pd.DataFrame) -> dict[str, list]:
    """A trial's randomised patients and therapists (sorted; ``alliance``: the analysis table,
    a row per patient, rater and month): the levels of a refitted model's group effects, the
    same for both raters."""
    return {
        "patients": sorted(alliance["patient_id"].unique()),
        "therapists": sorted(alliance["therapist_id"].unique()),
    }


def codes(values: pd.Series, levels: Sequence) -> np.ndarray:
    """Each value's position in ``levels``; an error for a value not among them."""
    index = pd.Index(list(levels)).get_indexer(values)
    if (index < 0).any():
        unknown = sorted(set(pd.Series(values)[index < 0].astype(str)))[:5]
        raise ValueError(f"values outside the compiled model's levels: {', '.join(unknown)}")
    return index.astype("int64")


@dataclass
class GrowthStructure:
    """What a growth model's compiled form is built on: the Bambi model of one data set (its
    formula's design for new data, its parameter names), the specification and priors, and the
    trial's patients and therapists (the levels of the group effects)."""

    reference: object
    spec: Mapping
    priors: Mapping
    patients: list
    therapists: list
    upper: float
    #: Censored models sampled in marginal form: how many totals at the ceiling any data set the
    #: compiled model is refitted to may have (:func:`ceiling_capacity`).
    ceiling_capacity: int = 0
    group_terms: dict = field(init=False)

    def __post_init__(self):
        from alliance.growth import group_terms

        self.group_terms = {}
        for name in group_terms(self.reference):
            expression, factor = (part.strip() for part in name.split("|"))
            if factor not in ("patient_id", "therapist_id"):
                raise ValueError(f"group term {name!r}: only patient and therapist groups refit")
            self.group_terms[name] = (expression, factor)

    def dims_of(self, name: str) -> tuple[str, ...]:
        """The dimensions Bambi gives parameter ``name`` (none for a scalar)."""
        return tuple(self.reference.backend.model.named_vars_to_dims.get(name) or ())

    def coords_of(self, dim: str) -> list:
        return list(self.reference.backend.model.coords[dim])

    def levels(self, factor: str) -> list:
        return self.patients if factor == "patient_id" else self.therapists

    def common_design(self, data: pd.DataFrame, component: str = "mu") -> np.ndarray:
        design = self.reference.parameters[component].design.common
        return np.asarray(design.evaluate_new_data(data).design_matrix, dtype="float64")

    def inputs(self, data: pd.DataFrame) -> dict[str, np.ndarray]:
        """The model's data inputs from one rater's growth data
        (:func:`alliance.growth.growth_data`)."""
        values = {
            "common_design": self.common_design(data),
            "wai_observed": data["wai_total"].to_numpy(dtype="float64"),
        }
        for factor in {factor for _, factor in self.group_terms.values()}:
            values[f"{factor}_code"] = codes(data[factor], self.levels(factor))
        for expression, _ in self.group_terms.values():
            if expression != "1":
                values[f"{expression}_value"] = data[expression].to_numpy(dtype="float64")
        if self.spec.get("residual_sd_by"):
            values["sigma_design"] = self.common_design(data, "sigma")
        return values


def growth_structure(
    data: pd.DataFrame,
    spec: Mapping,
    priors: Mapping,
    patients: Sequence,
    therapists: Sequence,
    upper: float,
    ceiling_capacity: int | None = None,
) -> GrowthStructure:
    """The structure of a growth model on data like ``data`` (one rater's growth data);
    ``upper``: the scale's ceiling (a censored likelihood's bound); ``ceiling_capacity``: the
    most totals at the ceiling of any data set it will be fitted to (default: those of
    ``data``; :func:`ceiling_capacity` of the trial when one compiled model serves both raters)."""
    from alliance.growth import build_growth_model

    if ceiling_capacity is None:
        ceiling_capacity = int((data["wai_total"] >= upper).sum())
    reference = build_growth_model(data, spec, priors)
    return GrowthStructure(
        reference, spec, priors, list(patients), list(therapists), upper, ceiling_capacity
    )


def ceiling_capacity(alliance: pd.DataFrame, upper: float) -> int:
    """The most totals at the ceiling ``upper`` that one rater has in the trial (``alliance``:
    the analysis table): what a censored growth model compiled once for both raters, and for
    their cross-validation folds, must hold."""
    at_ceiling = alliance[alliance["assessed"] & (alliance["wai_total"] >= upper)]
    return int(at_ceiling.groupby("rater").size().max()) if len(at_ceiling) else 0


def growth_refit_model(structure: GrowthStructure, data: pd.DataFrame):
    """The PyMC form of the Bambi growth model of ``structure``, its data as inputs (initial
    values from ``data``): the same priors, non-centred group effects and likelihood, and the
    same parameter names, dimensions and coordinates as Bambi gives them."""
    return _growth_model(structure, data, integrate_patient_effects=False)[0]


#: The likelihoods whose models are sampled with the patient effects integrated out.
INTEGRATED_LIKELIHOODS = ("gaussian", "censored_gaussian")


def integrates_patient_effects(structure: GrowthStructure) -> bool:
    """Whether the patient effects of the growth model can be integrated out in closed form:
    one or two patient terms (intercept, slope) and a Gaussian likelihood, or a censored one
    (its totals at the ceiling then sampled as latent values above it: :func:`_growth_model`)."""
    likelihood = structure.spec.get("likelihood", "gaussian")
    return likelihood in INTEGRATED_LIKELIHOODS and 1 <= len(_patient_terms(structure)) <= 2


def is_censored(structure: GrowthStructure) -> bool:
    return structure.spec.get("likelihood", "gaussian") == "censored_gaussian"


def ceiling_inputs(structure: GrowthStructure, inputs: Mapping) -> dict[str, np.ndarray]:
    """The data inputs of a censored model's marginal form besides :meth:`GrowthStructure.inputs`:
    the positions of the totals at the ceiling (``ceiling_rows``) and which of the
    ``ceiling_capacity`` latent values they use (``ceiling_slot_used``: the first ones)."""
    rows = np.flatnonzero(np.asarray(inputs["wai_observed"]) >= structure.upper)
    if len(rows) > structure.ceiling_capacity:
        raise ValueError(
            f"{len(rows)} totals at the ceiling, the compiled model holds "
            f"{structure.ceiling_capacity} (growth_structure's ceiling_capacity)"
        )
    used = np.zeros(structure.ceiling_capacity)
    used[: len(rows)] = 1.0
    return {"ceiling_rows": rows.astype("int64"), "ceiling_slot_used": used}


def _growth_model(structure: GrowthStructure, data: pd.DataFrame, integrate_patient_effects):
    """The growth model's PyMC form (:func:`growth_refit_model`) or, with
    ``integrate_patient_effects``, its marginal form (:class:`MarginalGrowthModel`). Returns the
    model and, for the marginal form, the graphs of the residuals (totals minus the fixed part and
    the therapist effects) and of their precisions (1 / residual variance)."""
    import pymc as pm
    import pytensor.tensor as pt

    spec, priors = structure.spec, structure.priors
    design = structure.reference.parameters["mu"].design.common
    inputs = structure.inputs(data)

    def coefficient(name: str, entry: Mapping):
        """A common coefficient named, shaped and labelled as in the Bambi model."""
        dims = structure.dims_of(name)
        for dim in dims:
            if dim not in model.coords:
                model.add_coord(dim, structure.coords_of(dim))
        value = pm.Normal(name, mu=entry.get("mu", 0), sigma=entry["sigma"], dims=dims or None)
        return value if dims else value[None]

    with pm.Model() as model:
        x = pm.Data("common_design", inputs["common_design"])
        mu = pt.dot(
            x,
            pt.concatenate(
                [
                    coefficient(term, priors["intercept" if term == "Intercept" else "common"])
                    for term in design.slices
                ]
            ),
        )
        codes_of = {
            factor: pm.Data(f"{factor}_code", inputs[f"{factor}_code"])
            for factor in sorted({factor for _, factor in structure.group_terms.values()})
        }
        integrated = []  # (SD, value per observation) of each patient term integrated out
        for name, (expression, factor) in structure.group_terms.items():
            dim = f"{factor}__factor_dim"
            if dim not in model.coords:
                model.add_coord(dim, [str(level) for level in structure.levels(factor)])
            sd = pm.HalfNormal(f"{name}_sigma", sigma=priors["group_sd"][name]["sd"])
            if expression != "1" and f"{expression}_value" not in model.named_vars:
                pm.Data(f"{expression}_value", inputs[f"{expression}_value"])
            value = model[f"{expression}_value"] if expression != "1" else None
            if integrate_patient_effects and factor == "patient_id":
                integrated.append((sd, value))
                continue
            offset = pm.Normal(f"{name}_offset", 0, 1, dims=dim)
            effect = (offset * sd)[codes_of[factor]]
            mu = mu + (effect if value is None else effect * value)
        if spec.get("residual_sd_by"):
            sigma_design = pm.Data("sigma_design", inputs["sigma_design"])
            (name,) = structure.reference.parameters["sigma"].design.common.slices
            sigma = pt.exp(pt.dot(sigma_design, coefficient(f"sigma_{name}", priors["log_sigma"])))
        else:
            sigma = pm.HalfNormal("sigma", sigma=priors["sigma"]["sigma"])
        observed = pm.Data("wai_observed", inputs["wai_observed"])
        if integrate_patient_effects and is_censored(structure):
            # Data augmentation: a total at the ceiling is a latent total above it, upper +
            # exp(excess_log), with a flat prior on the latent total (log Jacobian excess_log), so
            # that integrating it out gives the censored likelihood's P(total >= upper). Slots
            # that these data do not use have a standard normal density and nothing else. A model
            # with no slot has no total at the ceiling (ceiling_inputs refuses data with more).
            ceiling = ceiling_inputs(structure, inputs)
            if structure.ceiling_capacity:
                rows = pm.Data("ceiling_rows", ceiling["ceiling_rows"])
                used = pm.Data("ceiling_slot_used", ceiling["ceiling_slot_used"])
                excess_log = pm.Flat(LATENT_CEILING, shape=structure.ceiling_capacity)
                observed = pt.set_subtensor(
                    observed[rows], structure.upper + pt.exp(excess_log[: rows.shape[0]])
                )
                pm.Potential(
                    "ceiling_latent_density",
                    pt.sum(
                        used * excess_log
                        + (1 - used) * (-0.5 * pt.square(excess_log) - 0.5 * np.log(2 * np.pi))
                    ),
                )
        if integrate_patient_effects:
            residual = observed - mu
            precision = pt.ones_like(residual) / pt.square(sigma)
            pm.Potential(
                "wai_total_integrated",
                _integrated_log_density(
                    residual,
                    precision,
                    integrated,
                    codes_of["patient_id"],
                    len(structure.patients),
                ),
            )
            return model, (residual, precision)
        if spec["likelihood"] == "censored_gaussian":
            pm.Censored(
                "wai_total",
                pm.Normal.dist(mu=mu, sigma=sigma),
                lower=None,
                upper=structure.upper,
                observed=observed,
            )
        else:
            pm.Normal("wai_total", mu=mu, sigma=sigma, observed=observed)
    return model, None


#: The latent values (log of the excess over the ceiling) of a censored model's totals at the
#: ceiling in its marginal form.
LATENT_CEILING = "ceiling_excess_log"


def _integrated_log_density(residual, precision, terms, patient_code, n_patients):
    """Log density of the totals with the patients' effects integrated out (PyTensor graph).

    Patient i's totals y_i (residuals r_i after the fixed part and the therapist effects) are
    normal with covariance Z_i D Z_i' + W_i^-1 (Z_i: the patient terms' values, 1 or time;
    D: the diagonal of their SDs squared; W_i: the residual precisions). With
    P_i = D^-1 + Z_i' W_i Z_i and g_i = Z_i' W_i r_i (at most 2 x 2), the matrix determinant lemma
    and Woodbury's identity give

        log N(r_i) = -1/2 [sum_j log(2 pi / w_ij) + log|P_i| + log|D|
                           + r_i' W_i r_i - g_i' P_i^-1 g_i].

    A patient without a total contributes 0 (P_i = D^-1)."""
    import pytensor.tensor as pt

    def per_patient(values):
        return pt.inc_subtensor(pt.zeros(n_patients)[patient_code], values)

    ones = pt.ones_like(residual)
    values = [ones if value is None else value for _, value in terms]
    g = [per_patient(precision * value * residual) for value in values]
    p = [
        [
            per_patient(precision * values[k] * values[m])
            + (1 / pt.square(terms[k][0]) if k == m else 0)
            for m in range(len(terms))
        ]
        for k in range(len(terms))
    ]
    if len(terms) == 1:
        log_det = pt.log(p[0][0])
        quadratic = pt.square(g[0]) / p[0][0]
    else:
        det = p[0][0] * p[1][1] - pt.square(p[0][1])
        log_det = pt.log(det)
        quadratic = (
            p[1][1] * pt.square(g[0]) - 2 * p[0][1] * g[0] * g[1] + p[0][0] * pt.square(g[1])
        ) / det
    log_det_d = sum(pt.log(pt.square(sd)) for sd, _ in terms)
    return -0.5 * (
        pt.sum(pt.log(2 * np.pi / precision))
        + pt.sum(log_det)
        + n_patients * log_det_d
        + pt.sum(precision * pt.square(residual))
        - pt.sum(quadratic)
    )


class MarginalGrowthModel(CompiledModel):
    """A growth model compiled once and sampled with its patient effects integrated out
    (:func:`_integrated_log_density`): the sampler explores the few common parameters, SDs and
    therapist effects, not the hundreds of patient effects whose SDs mix slowly when they are
    sampled (three assessments barely separate the SD of the change from the residual SD). After
    sampling, each draw's patient effects are drawn from their exact conditional posterior
    given that draw (normal: mean P_i^-1 g_i, covariance P_i^-1), so the draws are of the same
    joint posterior as :func:`growth_refit_model`'s, with the same variables (offsets: effect /
    SD). ``model`` is that full form, for setting data and computing the log-likelihood and
    replicates from the draws; thinning (``growth.thin``) is not needed and not applied.

    A censored model's totals at the ceiling are sampled as latent totals above it (data
    augmentation, :func:`_growth_model`); the patient effects are drawn given each draw's latent
    totals, which makes them draws of the censored model's posterior; the latent values are then
    dropped from the tree."""

    def __init__(self, structure: GrowthStructure, data: pd.DataFrame, log=None):
        marginal, (residual, precision) = _growth_model(structure, data, True)
        super().__init__(marginal, log)
        self.marginal = marginal
        self.graphs = (residual, precision)
        self.structure = structure
        self.model = growth_refit_model(structure, data)

    @property
    def exact_patient_density(self) -> bool:
        """Whether :meth:`patient_log_density` applies (a Gaussian likelihood, not censored)."""
        return not is_censored(self.structure)

    def thin(self, sampling: Mapping) -> int:
        return 1

    def fit(self, inputs: Mapping[str, np.ndarray], sampling: Mapping, seed: int):
        """The posterior as :meth:`CompiledModel.fit` gives it, with the patient terms' offsets
        drawn from their conditional posterior at every draw (seeded by ``seed``)."""
        tree = super().fit(self._marginal_inputs(inputs), sampling, seed)
        posterior = tree["posterior"].to_dataset()
        offsets = self.patient_offsets(inputs, posterior, np.random.default_rng([int(seed), 1]))
        tree["posterior"] = posterior.assign(offsets).drop_vars(LATENT_CEILING, errors="ignore")
        return tree

    def patient_offsets(self, inputs, posterior, rng) -> dict:
        """Offsets (effect / SD) of each patient term at each draw of ``posterior`` (which has
        every sampled parameter of the marginal model), drawn from their conditional posterior
        given the draw and the data ``inputs`` (:func:`conditional_patient_offsets`)."""
        return conditional_patient_offsets(
            self.structure, inputs, posterior, *self._residuals(inputs, posterior), rng
        )

    def patient_log_density(self, inputs, posterior) -> np.ndarray:
        """log p(y_i | draw) of each patient's totals in ``inputs`` with their effects integrated
        out, at each draw of ``posterior`` (draw x patient;
        :func:`marginal_patient_log_density`): the exact predictive density of a new patient's
        totals given a draw, with no Monte Carlo error from drawing their effects. Gaussian
        models only (:attr:`exact_patient_density`)."""
        if not self.exact_patient_density:
            raise ValueError("a censored model's patient density has no closed form here")
        return marginal_patient_log_density(
            self.structure, inputs, posterior, *self._residuals(inputs, posterior)
        )

    def _marginal_inputs(self, inputs: Mapping) -> dict:
        """``inputs`` with a censored model's positions of the totals at the ceiling (an error
        where there are more than the model holds, also where it holds none)."""
        if is_censored(self.structure):
            ceiling = ceiling_inputs(self.structure, inputs)
            if self.structure.ceiling_capacity:
                return {**inputs, **ceiling}
        return dict(inputs)

    def _residuals(self, inputs, posterior):
        """Residuals and residual precisions (draw x observation) at every draw, on ``inputs``
        (a total at the ceiling: the draw's latent total)."""
        import pymc as pm

        from alliance.sampling import _evaluate_over_draws

        with self.marginal:
            pm.set_data(self.used(self._marginal_inputs(inputs)))
        return _evaluate_over_draws(list(self.graphs), list(self.marginal.free_RVs), posterior)


def _patient_terms(structure: GrowthStructure) -> list[tuple[str, str]]:
    """The growth model's patient terms: (name, expression) of each, e.g. ("time|patient_id",
    "time")."""
    return [
        (name, expression)
        for name, (expression, factor) in structure.group_terms.items()
        if factor == "patient_id"
    ]


def _per_patient_moments(structure, inputs, posterior, residual, precision):
    """Per draw and patient, what integrating out the patient effects needs (NumPy; the
    formulas of :func:`_integrated_log_density`): the patient terms' SDs (draw x 1), g_i = Z_i'
    W_i r_i and P_i = D^-1 + Z_i' W_i Z_i (lists of draw x patient arrays), and per patient the
    sums of log(2 pi / w_ij) and of w_ij r_ij^2. ``residual``, ``precision``: draw x
    observation, draws stacked chain by chain."""
    from scipy import sparse

    code = np.asarray(inputs["patient_id_code"])
    indicator = sparse.csr_matrix(
        (np.ones(len(code)), (code, np.arange(len(code)))),
        shape=(len(structure.patients), len(code)),
    )

    def per_patient(values):  # draw x observation -> draw x patient
        return np.asarray(indicator @ values.T).T

    terms = _patient_terms(structure)
    values = [
        np.ones(len(code)) if expression == "1" else np.asarray(inputs[f"{expression}_value"])
        for _, expression in terms
    ]
    sds = [posterior[f"{name}_sigma"].to_numpy().reshape(-1, 1) for name, _ in terms]
    g = [per_patient(precision * value * residual) for value in values]
    p = [
        [
            per_patient(precision * values[k] * values[m]) + (1 / sds[k] ** 2 if k == m else 0)
            for m in range(len(terms))
        ]
        for k in range(len(terms))
    ]
    log_scale = per_patient(np.log(2 * np.pi / precision))
    weighted_squares = per_patient(precision * residual**2)
    return sds, g, p, log_scale, weighted_squares


def marginal_patient_log_density(structure, inputs, posterior, residual, precision) -> np.ndarray:
    """log p(y_i | draw) of each patient's totals with their effects integrated out (draw x
    patient; 0 for a patient without a total): the per-patient terms of
    :func:`_integrated_log_density`, in NumPy."""
    sds, g, p, log_scale, weighted_squares = _per_patient_moments(
        structure, inputs, posterior, residual, precision
    )
    if len(g) == 1:
        log_det, quadratic = np.log(p[0][0]), g[0] ** 2 / p[0][0]
    else:
        det = p[0][0] * p[1][1] - p[0][1] ** 2
        log_det = np.log(det)
        quadratic = (p[1][1] * g[0] ** 2 - 2 * p[0][1] * g[0] * g[1] + p[0][0] * g[1] ** 2) / det
    log_det_d = sum(np.log(sd**2) for sd in sds)
    return -0.5 * (log_scale + log_det + log_det_d + weighted_squares - quadratic)


def conditional_patient_offsets(structure, inputs, posterior, residual, precision, rng) -> dict:
    """Offsets (effect / SD) of each patient term of a growth model at each draw of ``posterior``
    (dims chain, draw), drawn from their posterior given the draw: ``residual`` and ``precision``
    (draw x observation, draws stacked chain by chain) are the totals minus the fixed part and
    the therapist effects, and 1 / the residual variance, at each draw. Patient i's effects are
    normal with precision P_i = D^-1 + Z_i' W_i Z_i and mean P_i^-1 Z_i' W_i r_i (Z_i: the patient
    terms' values; D: their SDs squared); a patient without a total keeps the prior."""
    import xarray as xr

    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    n_patients = len(structure.patients)
    sds, g, p, _, _ = _per_patient_moments(structure, inputs, posterior, residual, precision)
    noise = rng.standard_normal((len(g), *g[0].shape))
    if len(g) == 1:
        effects = [g[0] / p[0][0] + noise[0] / np.sqrt(p[0][0])]
    else:
        det = p[0][0] * p[1][1] - p[0][1] ** 2
        c00, c01, c11 = p[1][1] / det, -p[0][1] / det, p[0][0] / det  # the covariance
        l00 = np.sqrt(c00)  # its Cholesky factor
        l10 = c01 / l00
        l11 = np.sqrt(c11 - l10**2)
        effects = [
            c00 * g[0] + c01 * g[1] + l00 * noise[0],
            c01 * g[0] + c11 * g[1] + l10 * noise[0] + l11 * noise[1],
        ]
    dim = "patient_id__factor_dim"
    coords = {
        "chain": posterior["chain"].to_numpy(),
        "draw": posterior["draw"].to_numpy(),
        dim: [str(level) for level in structure.patients],
    }
    return {
        f"{name}_offset": xr.DataArray(
            (effect / sd).reshape(chains, draws, n_patients),
            dims=("chain", "draw", dim),
            coords=coords,
        )
        for (name, _), effect, sd in zip(_patient_terms(structure), effects, sds, strict=True)
    }


def compile_growth_model(structure: GrowthStructure, data: pd.DataFrame, log=None):
    """A growth model compiled once for refitting: with its patient effects integrated out where
    that is exact (:func:`integrates_patient_effects`; :class:`MarginalGrowthModel`), else its
    full PyMC form (:func:`growth_refit_model`)."""
    if integrates_patient_effects(structure):
        return MarginalGrowthModel(structure, data, log)
    return CompiledModel(growth_refit_model(structure, data), log)
