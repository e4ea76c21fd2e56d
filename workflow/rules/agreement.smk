# Stage 3, aim (b): how far patients' and therapists' ratings agree. Two models, each fitted,
# checked and summarised (layout: common.smk): the bivariate growth model of both ratings (PyMC,
# `bivariate`) and the truth-and-bias model of the therapist's rating (Bambi, `truth_and_bias`).


rule fit_agreement:
    input:
        alliance=rules.clean_data.output.alliance,
    output:
        fit=fit_file("agreement", "bivariate"),
    log:
        model_log("fit", "agreement", "bivariate")[0],
    benchmark:
        model_log("fit", "agreement", "bivariate")[1]
    priority: fit_priority("agreement")
    conda:
        CONDA_ENV
    # Chains sampled one after another: most of a fit is compilation, so two fits side by
    # side finish sooner than one fit with two sampling threads.
    threads: 1
    params:
        **fit_params("agreement"),
    script:
        "../scripts/fit_agreement.py"


rule check_agreement:
    input:
        alliance=rules.clean_data.output.alliance,
        fit=rules.fit_agreement.output.fit,
    output:
        diagnostics=model_result("agreement", "bivariate", "diagnostics.csv"),
        sensitivity=model_result("agreement", "bivariate", "prior_sensitivity.csv"),
        ppc_table=model_result("agreement", "bivariate", "correlation_check.csv"),
        frequentist=model_result("agreement", "bivariate", "frequentist_check.csv"),
        ppc=report(
            model_result("agreement", "bivariate", "correlation_check.png"),
            caption="../../report/captions/agreement_ppc.rst",
            category="3. Aim (b): agreement",
        ),
        correlations=report(
            model_result("agreement", "bivariate", "rater_correlations.png"),
            caption="../../report/captions/rater_correlations.rst",
            category="3. Aim (b): agreement",
        ),
        prior_check=report(
            model_result("agreement", "bivariate", "prior_check.png"),
            caption="../../report/captions/agreement_prior.rst",
            category="3. Aim (b): agreement",
        ),
    log:
        model_log("check", "agreement", "bivariate")[0],
    benchmark:
        model_log("check", "agreement", "bivariate")[1]
    conda:
        CONDA_ENV
    params:
        instrument=config["instrument"],
        ci_prob=SUMMARY["ci_prob"],
        checks=CHECKS,
    script:
        "../scripts/check_agreement.py"


rule fit_truth_and_bias:
    input:
        alliance=rules.clean_data.output.alliance,
    output:
        fit=fit_file("agreement", "truth_and_bias"),
    log:
        model_log("fit", "agreement", "truth_and_bias")[0],
    benchmark:
        model_log("fit", "agreement", "truth_and_bias")[1]
    priority: fit_priority("truth_and_bias")
    conda:
        CONDA_ENV
    # Chains sampled one after another: most of a fit is compilation, so two fits side by
    # side finish sooner than one fit with two sampling threads.
    threads: 1
    params:
        **fit_params("truth_and_bias"),
    script:
        "../scripts/fit_truth_and_bias.py"


rule check_truth_and_bias:
    input:
        fit=rules.fit_truth_and_bias.output.fit,
    output:
        diagnostics=model_result("agreement", "truth_and_bias", "diagnostics.csv"),
        sensitivity=model_result("agreement", "truth_and_bias", "prior_sensitivity.csv"),
        ppc=report(
            model_result("agreement", "truth_and_bias", "ppc.png"),
            caption="../../report/captions/truth_and_bias_ppc.rst",
            category="3. Aim (b): agreement",
        ),
        prior_check=report(
            model_result("agreement", "truth_and_bias", "prior_check.png"),
            caption="../../report/captions/truth_and_bias_prior.rst",
            category="3. Aim (b): agreement",
        ),
    log:
        model_log("check", "agreement", "truth_and_bias")[0],
    benchmark:
        model_log("check", "agreement", "truth_and_bias")[1]
    conda:
        CONDA_ENV
    params:
        checks=CHECKS,
    script:
        "../scripts/check_truth_and_bias.py"


rule summarise_agreement:
    input:
        alliance=rules.clean_data.output.alliance,
        bivariate=model_result("agreement", "bivariate", "estimands.csv"),
        truth_and_bias=model_result("agreement", "truth_and_bias", "estimands.csv"),
    output:
        estimands="results/tables/estimands_aim_b.csv",
        detail=report(
            "results/tables/agreement_estimands.csv",
            caption="../../report/captions/agreement_estimands.rst",
            category="3. Aim (b): agreement",
        ),
        truth_and_bias=report(
            "results/tables/truth_and_bias.csv",
            caption="../../report/captions/truth_and_bias.rst",
            category="3. Aim (b): agreement",
        ),
        truth_and_bias_figure=report(
            "results/figures/truth_and_bias.png",
            caption="../../report/captions/truth_and_bias.rst",
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
    log:
        "logs/summarise_agreement.log",
    benchmark:
        "logs/benchmarks/summarise_agreement.tsv"
    conda:
        CONDA_ENV
    params:
        instrument=config["instrument"],
        ci_prob=SUMMARY["ci_prob"],
    script:
        "../scripts/summarise_agreement.py"
