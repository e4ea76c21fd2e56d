# Stage 4, aim (c): what goes with alliance in the digital arm, one job per rater.


rule fit_association:
    input:
        alliance=rules.clean_data.output.alliance,
        covariates=rules.clean_data.output.digital_covariates,
    output:
        fit="models/association/{rater}.nc",
        fit_within_between="models/association/{rater}_within_between.nc",
        estimands="results/association/{rater}_estimands.csv",
        within_between=report(
            "results/association/{rater}_within_between.csv",
            caption="../../report/captions/association_within_between.rst",
            category="4. Aim (c): associations",
            labels={"table": "within and between patients", "rater": "{rater}"},
        ),
        diagnostics="results/association/{rater}_diagnostics.csv",
        sensitivity="results/association/{rater}_prior_sensitivity.csv",
        missing=report(
            "results/association/{rater}_missing_predictors.csv",
            caption="../../report/captions/association_missing.rst",
            category="4. Aim (c): associations",
            labels={"table": "missing predictors", "rater": "{rater}"},
        ),
        collinearity=report(
            "results/association/{rater}_collinearity.csv",
            caption="../../report/captions/association_collinearity.rst",
            category="4. Aim (c): associations",
            labels={"table": "collinearity", "rater": "{rater}"},
        ),
        ppc=report(
            "results/association/{rater}_ppc.png",
            caption="../../report/captions/association_ppc.rst",
            category="4. Aim (c): associations",
            labels={"figure": "posterior predictive check", "rater": "{rater}"},
        ),
        prior_check=report(
            "results/association/{rater}_prior_check.png",
            caption="../../report/captions/association_prior.rst",
            category="4. Aim (c): associations",
            labels={"figure": "prior predictive check", "rater": "{rater}"},
        ),
    log:
        "logs/fit_association/{rater}.log",
    benchmark:
        "logs/benchmarks/fit_association/{rater}.tsv"
    wildcard_constraints:
        rater="patient|therapist",
    priority: lambda wildcards: fit_priority("association", wildcards.rater)
    conda:
        CONDA_ENV
    # Chains sampled one after another: most of a fit is compilation, so two fits side by
    # side finish sooner than one fit with two sampling threads.
    threads: 1
    params:
        # Listed so that changing any of them reruns the fit.
        priors=config["association"]["priors"],
        sampling=config["sampling"],
        # The safety net refits a fit that fails these (alliance.sampling).
        convergence=CONVERGENCE_THRESHOLDS,
        seed=config["seed"],
    script:
        "../scripts/fit_association.py"


rule summarise_associations:
    input:
        estimands=expand(rules.fit_association.output.estimands, rater=RATERS),
    output:
        estimands="results/tables/estimands_aim_c.csv",
        detail="results/tables/association_estimands.csv",
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
    script:
        "../scripts/summarise_associations.py"
