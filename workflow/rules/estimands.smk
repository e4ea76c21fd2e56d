# Stage 5: each model's estimand rows, and the estimand table that outside tools rely on (data
# contract).


rule summarise_model:
    input:
        fit=fit_file("{family}", "{name}"),
    output:
        estimands=model_result("{family}", "{name}", "estimands.csv"),
    log:
        model_log("summarise", "{family}", "{name}")[0],
    benchmark:
        model_log("summarise", "{family}", "{name}")[1]
    wildcard_constraints:
        family="growth|agreement|association",
    conda:
        CONDA_ENV
    params:
        summary=SUMMARY,
    script:
        "../scripts/summarise_model.py"


rule estimands:
    input:
        aim_a=rules.summarise_growth.output.estimands,
        aim_b=rules.summarise_agreement.output.estimands,
        aim_c=rules.summarise_associations.output.estimands,
        detail_a=rules.summarise_growth.output.detail,
        detail_b=rules.summarise_agreement.output.detail,
        detail_c=rules.summarise_associations.output.detail,
        # Not read: with diagnostics.strict, a model that fails its checks stops the run before
        # its estimand rows reach the contract's table.
        checks=[
            *expand(
                model_result("growth", "{name}", "diagnostics.csv"),
                name=GROWTH_NAMES + ORDINAL_NAMES,
            ),
            *expand(
                model_result("agreement", "{name}", "diagnostics.csv"),
                name=AGREEMENT_NAMES,
            ),
            *expand(
                model_result("association", "{name}", "diagnostics.csv"),
                name=ASSOCIATION_NAMES,
            ),
        ],
    output:
        estimands=report(
            "results/tables/estimands.csv",
            caption="../../report/captions/estimands.rst",
            category="5. Estimands",
        ),
        detail="results/tables/estimands_detail.csv",
        prior_posterior=report(
            "results/figures/prior_posterior.png",
            caption="../../report/captions/prior_posterior.rst",
            category="5. Estimands",
        ),
    log:
        "logs/estimands.log",
    benchmark:
        "logs/benchmarks/estimands.tsv"
    conda:
        CONDA_ENV
    params:
        min_contraction=config["diagnostics"]["min_contraction"],
    script:
        "../scripts/collect_estimands.py"


rule findings:
    input:
        detail=rules.estimands.output.detail,
    output:
        findings=report(
            "results/tables/findings.csv",
            caption="../../report/captions/findings.rst",
            category="5. Estimands",
        ),
    log:
        "logs/findings.log",
    benchmark:
        "logs/benchmarks/findings.tsv"
    conda:
        CONDA_ENV
    params:
        decision_prob=config["summary"]["decision_prob"],
    script:
        "../scripts/write_findings.py"
