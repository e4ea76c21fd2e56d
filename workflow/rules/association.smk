# Stage 4, aim (c): what goes with alliance in the digital arm. Per rater, two models, each
# fitted, checked and summarised (layout: common.smk): `pooled` (the contract's association,
# pooled over within- and between-patient variation) and `within_between` (its decomposition).


rule fit_association:
    input:
        alliance=rules.clean_data.output.alliance,
        covariates=rules.clean_data.output.digital_covariates,
    output:
        fit=fit_file("association", "{rater}_{variant}"),
    log:
        model_log("fit", "association", "{rater}_{variant}")[0],
    benchmark:
        model_log("fit", "association", "{rater}_{variant}")[1]
    wildcard_constraints:
        rater="|".join(RATERS),
        variant="|".join(ASSOCIATION_VARIANTS),
    priority: lambda wildcards: fit_priority("association", wildcards.rater)
    conda:
        CONDA_ENV
    # Chains sampled one after another: most of a fit is compilation, so two fits side by
    # side finish sooner than one fit with two sampling threads.
    threads: 1
    params:
        **fit_params("association"),
    script:
        "../scripts/fit_association.py"


rule check_association:
    input:
        alliance=rules.clean_data.output.alliance,
        covariates=rules.clean_data.output.digital_covariates,
        fit=rules.fit_association.output.fit,
    output:
        diagnostics=model_result("association", "{rater}_{variant}", "diagnostics.csv"),
        sensitivity=model_result(
            "association", "{rater}_{variant}", "prior_sensitivity.csv"
        ),
        collinearity=report(
            model_result("association", "{rater}_{variant}", "collinearity.csv"),
            caption="../../report/captions/association_collinearity.rst",
            category="4. Aim (c): associations",
            labels={"table": "collinearity", "rater": "{rater}", "model": "{variant}"},
        ),
        ppc=report(
            model_result("association", "{rater}_{variant}", "ppc.png"),
            caption="../../report/captions/association_ppc.rst",
            category="4. Aim (c): associations",
            labels={
                "figure": "posterior predictive check",
                "rater": "{rater}",
                "model": "{variant}",
            },
        ),
        prior_check=report(
            model_result("association", "{rater}_{variant}", "prior_check.png"),
            caption="../../report/captions/association_prior.rst",
            category="4. Aim (c): associations",
            labels={
                "figure": "prior predictive check",
                "rater": "{rater}",
                "model": "{variant}",
            },
        ),
    log:
        model_log("check", "association", "{rater}_{variant}")[0],
    benchmark:
        model_log("check", "association", "{rater}_{variant}")[1]
    wildcard_constraints:
        rater="|".join(RATERS),
        variant="|".join(ASSOCIATION_VARIANTS),
    conda:
        CONDA_ENV
    params:
        scale=RESPONSE_SCALE,
        checks=CHECKS,
    script:
        "../scripts/check_association.py"


rule summarise_associations:
    input:
        alliance=rules.clean_data.output.alliance,
        covariates=rules.clean_data.output.digital_covariates,
        estimands=expand(
            model_result("association", "{name}", "estimands.csv"),
            name=ASSOCIATION_NAMES,
        ),
    output:
        estimands="results/tables/estimands_aim_c.csv",
        detail="results/tables/association_estimands.csv",
        within_between=report(
            "results/tables/association_within_between.csv",
            caption="../../report/captions/association_within_between.rst",
            category="4. Aim (c): associations",
        ),
        missing=report(
            "results/tables/association_missing_predictors.csv",
            caption="../../report/captions/association_missing.rst",
            category="4. Aim (c): associations",
        ),
        forest=report(
            "results/figures/association_forest.png",
            caption="../../report/captions/association_forest.rst",
            category="4. Aim (c): associations",
        ),
    log:
        "logs/summarise_associations.log",
    benchmark:
        "logs/benchmarks/summarise_associations.tsv"
    conda:
        CONDA_ENV
    params:
        ci_prob=SUMMARY["ci_prob"],
        rope_wai=SUMMARY["rope_wai"],
    script:
        "../scripts/summarise_associations.py"
