# Stage 2, aim (a): growth models of alliance by arm and rater, one job per model and rater.


rule fit_growth:
    input:
        alliance=rules.clean_data.output.alliance,
    output:
        fit="models/growth/{rater}_{model}.nc",
    log:
        "logs/fit_growth/{rater}_{model}.log",
    benchmark:
        "logs/benchmarks/fit_growth/{rater}_{model}.tsv"
    wildcard_constraints:
        rater="patient|therapist",
    priority: lambda wildcards: fit_priority("growth", wildcards.rater, wildcards.model)
    conda:
        CONDA_ENV
    # Chains sampled one after another: most of a fit is compilation, so two fits side by
    # side finish sooner than one fit with two sampling threads.
    threads: 1
    params:
        # Listed so that changing any of them reruns the fit.
        spec=growth_model_spec,
        priors=config["growth"]["priors"],
        sampling=config["sampling"],
        # The safety net refits a fit that fails these (alliance.sampling).
        convergence=CONVERGENCE_THRESHOLDS,
        thin=config["growth"]["thin"],
        seed=config["seed"],
    script:
        "../scripts/fit_growth.py"


rule check_growth:
    input:
        fit=rules.fit_growth.output.fit,
    output:
        estimands="results/growth/{rater}_{model}_estimands.csv",
        diagnostics="results/growth/{rater}_{model}_diagnostics.csv",
        ceiling="results/growth/{rater}_{model}_ceiling_check.csv",
        sd_check="results/growth/{rater}_{model}_sd_check.csv",
        sensitivity="results/growth/{rater}_{model}_prior_sensitivity.csv",
        ppc=report(
            "results/growth/{rater}_{model}_ppc.png",
            caption="../../report/captions/growth_ppc.rst",
            category="2. Aim (a): growth",
            labels={
                "figure": "posterior predictive check",
                "rater": "{rater}",
                "model": "{model}",
            },
        ),
        ceiling_figure=report(
            "results/growth/{rater}_{model}_ceiling_check.png",
            caption="../../report/captions/growth_ceiling.rst",
            category="2. Aim (a): growth",
            labels={"figure": "ceiling check", "rater": "{rater}", "model": "{model}"},
        ),
        prior_check=report(
            "results/growth/{rater}_{model}_prior_check.png",
            caption="../../report/captions/growth_prior.rst",
            category="2. Aim (a): growth",
            labels={
                "figure": "prior predictive check",
                "rater": "{rater}",
                "model": "{model}",
            },
        ),
    log:
        "logs/check_growth/{rater}_{model}.log",
    benchmark:
        "logs/benchmarks/check_growth/{rater}_{model}.tsv"
    wildcard_constraints:
        rater="patient|therapist",
    conda:
        CONDA_ENV
    script:
        "../scripts/check_growth.py"


rule summarise_growth:
    input:
        alliance=rules.clean_data.output.alliance,
        fits=expand(rules.fit_growth.output.fit, rater=RATERS, model=GROWTH_MODELS),
        estimands=expand(
            rules.check_growth.output.estimands, rater=RATERS, model=GROWTH_MODELS
        ),
        ppc=expand(rules.check_growth.output.ppc, rater=RATERS, model=GROWTH_MODELS),
        prior_checks=expand(
            rules.check_growth.output.prior_check, rater=RATERS, model=GROWTH_MODELS
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
        # The model reported for each rater and the LOO comparison that chose it.
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
    script:
        "../scripts/summarise_growth.py"
