# Stage 2, aim (a): growth models of alliance by arm and rater, one model per rater and config
# entry (growth.models), each fitted, checked and summarised (layout: common.smk).


# One job per model for both raters: the model is compiled once (its data are inputs).
rule fit_growth:
    input:
        alliance=rules.clean_data.output.alliance,
    output:
        **{f"fit_{rater}": fit_file("growth", f"{rater}_{{model}}") for rater in RATERS},
    log:
        model_log("fit", "growth", "{model}")[0],
    benchmark:
        model_log("fit", "growth", "{model}")[1]
    wildcard_constraints:
        model="|".join(GROWTH_MODELS),
    priority: lambda wildcards: fit_priority("growth", model=wildcards.model)
    conda:
        CONDA_ENV
    # Chains sampled one after another: most of a fit is compilation, so two fits side by
    # side finish sooner than one fit with two sampling threads.
    threads: 1
    params:
        **fit_params("growth"),
        spec=growth_model_spec,
        raters=RATERS,
    script:
        "../scripts/fit_growth.py"


# One job per model for both raters, as its fit: one process reads both fits (a refit of the
# model reruns both raters' checks either way).
rule check_growth:
    input:
        **{f"fit_{rater}": fit_file("growth", f"{rater}_{{model}}") for rater in RATERS},
    output:
        **{
            f"{kind}_{rater}": model_result("growth", f"{rater}_{{model}}", filename)
            for rater in RATERS
            for kind, filename in (
                ("diagnostics", "diagnostics.csv"),
                ("sensitivity", "prior_sensitivity.csv"),
                ("ceiling", "ceiling_check.csv"),
                ("sd_check", "sd_check.csv"),
            )
        },
        **{
            f"{kind}_{rater}": report(
                model_result("growth", f"{rater}_{{model}}", filename),
                caption=f"../../report/captions/{caption}.rst",
                category="2. Aim (a): growth",
                labels={"figure": figure, "rater": rater, "model": "{model}"},
            )
            for rater in RATERS
            for kind, filename, caption, figure in (
                ("ppc", "ppc.png", "growth_ppc", "posterior predictive check"),
                (
                    "ceiling_figure",
                    "ceiling_check.png",
                    "growth_ceiling",
                    "ceiling check",
                ),
                (
                    "prior_check",
                    "prior_check.png",
                    "growth_prior",
                    "prior predictive check",
                ),
            )
        },
    log:
        model_log("check", "growth", "{model}")[0],
    benchmark:
        model_log("check", "growth", "{model}")[1]
    wildcard_constraints:
        model="|".join(GROWTH_MODELS),
    conda:
        CONDA_ENV
    params:
        spec=growth_model_spec,
        scale=RESPONSE_SCALE,
        ci_prob=SUMMARY["ci_prob"],
        checks=CHECKS,
        raters=RATERS,
    script:
        "../scripts/check_growth.py"


# One job per model for both raters: the model is compiled once (its data are inputs).
rule cross_validate_growth:
    input:
        alliance=rules.clean_data.output.alliance,
    output:
        # Per rater, one row per patient: fold, assessments, log predictive density when left
        # out.
        **{
            f"kfold_{rater}": model_result("growth", f"{rater}_{{model}}", "kfold.csv")
            for rater in RATERS
        },
    log:
        model_log("cross_validate", "growth", "{model}")[0],
    benchmark:
        model_log("cross_validate", "growth", "{model}")[1]
    wildcard_constraints:
        model="|".join(GROWTH_MODELS),
    conda:
        CONDA_ENV
    threads: 1
    params:
        spec=growth_model_spec,
        priors=config["growth"]["priors"],
        instrument=config["instrument"],
        # Not the list of models: editing it reruns no other model's cross-validation.
        cross_validation={
            key: config["growth"]["cross_validation"][key]
            for key in ("folds", "chains", "draws", "tune")
        },
        target_accept=config["sampling"]["target_accept"],
        seed=SEED,
    script:
        "../scripts/cross_validate_growth.py"


rule fit_ordinal_growth:
    input:
        wai_items=rules.clean_data.output.wai_items,
    output:
        fit=fit_file("growth", "{rater}_ordinal_items"),
    log:
        model_log("fit", "growth", "{rater}_ordinal_items")[0],
    benchmark:
        model_log("fit", "growth", "{rater}_ordinal_items")[1]
    wildcard_constraints:
        rater="|".join(RATERS),
    priority: lambda wildcards: fit_priority("ordinal", wildcards.rater)
    conda:
        CONDA_ENV
    threads: 1
    params:
        **ordinal_fit_params(),
    script:
        "../scripts/fit_ordinal_growth.py"


rule check_ordinal_growth:
    input:
        fit=rules.fit_ordinal_growth.output.fit,
    output:
        diagnostics=model_result("growth", "{rater}_ordinal_items", "diagnostics.csv"),
        sensitivity=model_result(
            "growth", "{rater}_ordinal_items", "prior_sensitivity.csv"
        ),
        checks=model_result("growth", "{rater}_ordinal_items", "ordinal_checks.csv"),
        ppc=model_result("growth", "{rater}_ordinal_items", "ppc.png"),
    log:
        model_log("check", "growth", "{rater}_ordinal_items")[0],
    benchmark:
        model_log("check", "growth", "{rater}_ordinal_items")[1]
    wildcard_constraints:
        rater="|".join(RATERS),
    conda:
        CONDA_ENV
    params:
        instrument=config["instrument"],
        ci_prob=SUMMARY["ci_prob"],
        checks=CHECKS,
    script:
        "../scripts/check_ordinal_growth.py"


rule summarise_growth:
    input:
        alliance=rules.clean_data.output.alliance,
        fits=expand(fit_file("growth", "{name}"), name=GROWTH_NAMES),
        kfold=expand(
            model_result("growth", "{rater}_{model}", "kfold.csv"),
            rater=RATERS,
            model=CROSS_VALIDATED_MODELS,
        ),
        estimands=expand(
            model_result("growth", "{name}", "estimands.csv"),
            name=GROWTH_NAMES + ORDINAL_NAMES,
        ),
        ppc=expand(model_result("growth", "{name}", "ppc.png"), name=GROWTH_NAMES),
        prior_checks=expand(
            model_result("growth", "{name}", "prior_check.png"), name=GROWTH_NAMES
        ),
    output:
        estimands="results/tables/estimands_aim_a.csv",
        detail="results/tables/growth_estimands.csv",
        all_models="results/tables/growth_estimands_all_models.csv",
        comparison=report(
            "results/tables/growth_model_comparison.csv",
            caption="../../report/captions/growth_comparison.rst",
            category="2. Aim (a): growth",
        ),
        frequentist="results/tables/growth_frequentist_check.csv",
        # The model reported for each rater and the cross-validation that chose it.
        choice="results/tables/growth_reported_models.csv",
        # The chosen model's predictive checks, per rater (for the report).
        ppc_patient="results/figures/growth_reported_ppc_patient.png",
        ppc_therapist="results/figures/growth_reported_ppc_therapist.png",
        prior_check_patient="results/figures/growth_reported_prior_check_patient.png",
        prior_check_therapist="results/figures/growth_reported_prior_check_therapist.png",
        trajectories=report(
            "results/figures/growth_trajectories.png",
            caption="../../report/captions/growth_trajectories.rst",
            category="2. Aim (a): growth",
        ),
        forest=report(
            "results/figures/growth_contrasts.png",
            caption="../../report/captions/growth_contrasts.rst",
            category="2. Aim (a): growth",
        ),
    log:
        "logs/summarise_growth.log",
    benchmark:
        "logs/benchmarks/summarise_growth.tsv"
    conda:
        CONDA_ENV
    params:
        models=config["growth"]["models"],
        reported_model=config["growth"]["reported_model"],
        reported_alternatives=config["growth"]["reported_alternatives"],
        selection_min_se=config["growth"]["selection_min_se"],
        # (rater, model) of each input.kfold file, in its order.
        kfold_keys=[(r, m) for r in RATERS for m in CROSS_VALIDATED_MODELS],
        instrument=config["instrument"],
        ci_prob=SUMMARY["ci_prob"],
        rope_wai=SUMMARY["rope_wai"],
        # Where the chosen models' figures are (a function: not formatted with wildcards).
        model_result=lambda wildcards: model_result("growth", "{name}", "{file}"),
    script:
        "../scripts/summarise_growth.py"
