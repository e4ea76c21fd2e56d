# Stage 3, aim (b): the bivariate patient-therapist agreement model (PyMC).


rule fit_agreement:
    input:
        alliance=rules.clean_data.output.alliance,
    output:
        fit="models/agreement.nc",
    log:
        "logs/fit_agreement.log",
    benchmark:
        "logs/benchmarks/fit_agreement.tsv"
    priority: fit_priority("agreement")
    conda:
        CONDA_ENV
    # Chains sampled one after another: most of a fit is compilation, so two fits side by
    # side finish sooner than one fit with two sampling threads.
    threads: 1
    params:
        # Listed so that changing any of them reruns the fit.
        priors=config["agreement"]["priors"],
        sampling=config["sampling"],
        # The safety net refits a fit that fails these (alliance.sampling).
        convergence=CONVERGENCE_THRESHOLDS,
        draws_multiplier=config["agreement"]["draws_multiplier"],
        seed=config["seed"],
    script:
        "../scripts/fit_agreement.py"


rule check_agreement:
    input:
        alliance=rules.clean_data.output.alliance,
        fit=rules.fit_agreement.output.fit,
    output:
        estimands="results/tables/estimands_aim_b.csv",
        detail=report(
            "results/tables/agreement_estimands.csv",
            caption="../../report/captions/agreement_estimands.rst",
            category="3. Aim (b): agreement",
        ),
        diagnostics="results/agreement/diagnostics.csv",
        sensitivity="results/agreement/prior_sensitivity.csv",
        ppc_table="results/agreement/correlation_check.csv",
        frequentist="results/tables/agreement_frequentist_check.csv",
        ppc=report(
            "results/agreement/correlation_check.png",
            caption="../../report/captions/agreement_ppc.rst",
            category="3. Aim (b): agreement",
        ),
        bland_altman=report(
            "results/figures/bland_altman.png",
            caption="../../report/captions/bland_altman.rst",
            category="3. Aim (b): agreement",
        ),
        scatter=report(
            "results/figures/rater_scatter.png",
            caption="../../report/captions/rater_scatter.rst",
            category="3. Aim (b): agreement",
        ),
        correlations=report(
            "results/figures/rater_correlations.png",
            caption="../../report/captions/rater_correlations.rst",
            category="3. Aim (b): agreement",
        ),
        prior_check=report(
            "results/agreement/prior_check.png",
            caption="../../report/captions/agreement_prior.rst",
            category="3. Aim (b): agreement",
        ),
    log:
        "logs/check_agreement.log",
    benchmark:
        "logs/benchmarks/check_agreement.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/check_agreement.py"


rule truth_and_bias:
    input:
        alliance=rules.clean_data.output.alliance,
    output:
        fit="models/truth_and_bias.nc",
        table=report(
            "results/tables/truth_and_bias.csv",
            caption="../../report/captions/truth_and_bias.rst",
            category="3. Aim (b): agreement",
        ),
        diagnostics="results/agreement/truth_and_bias_diagnostics.csv",
        figure=report(
            "results/figures/truth_and_bias.png",
            caption="../../report/captions/truth_and_bias.rst",
            category="3. Aim (b): agreement",
        ),
    log:
        "logs/truth_and_bias.log",
    benchmark:
        "logs/benchmarks/truth_and_bias.tsv"
    priority: fit_priority("truth_and_bias")
    conda:
        CONDA_ENV
    # Chains sampled one after another: most of a fit is compilation, so two fits side by
    # side finish sooner than one fit with two sampling threads.
    threads: 1
    params:
        # Listed so that changing any of them reruns the fit.
        priors=config["agreement"]["priors"],
        sampling=config["sampling"],
        # The safety net refits a fit that fails these (alliance.sampling).
        convergence=CONVERGENCE_THRESHOLDS,
        seed=config["seed"],
    script:
        "../scripts/truth_and_bias.py"
