# The missing ratings described (patterns, trajectories by dropout, a dropout model) and aim (a)
# under missing at random given both raters (alliance.missing_data).


rule describe_missing_data:
    input:
        alliance=rules.clean_data.output.alliance,
        agreement=fit_file("agreement", "bivariate"),
        growth=rules.summarise_growth.output.detail,
    output:
        patterns=report(
            "results/tables/missing_patterns.csv",
            caption="../../report/captions/missing_patterns.rst",
            category="2. Aim (a): growth",
        ),
        trajectories="results/tables/trajectories_by_dropout.csv",
        figure=report(
            "results/figures/trajectories_by_dropout.png",
            caption="../../report/captions/trajectories_by_dropout.rst",
            category="2. Aim (a): growth",
        ),
        dropout="results/tables/dropout_model.csv",
        both_raters="results/tables/aim_a_given_both_raters.csv",
    log:
        "logs/describe_missing_data.log",
    benchmark:
        "logs/benchmarks/describe_missing_data.tsv"
    conda:
        CONDA_ENV
    params:
        months=config["instrument"]["months"],
        ci_prob=config["summary"]["ci_prob"],
        dropout_priors=config["missing_data"]["dropout_priors"],
        seed=SEED,
    script:
        "../scripts/describe_missing_data.py"


# Missing not at random: how far the missing ratings would have to depart from their prediction
# under missing at random for the aim (a) findings to change (alliance.tipping_points).


rule tipping_points:
    input:
        alliance=rules.clean_data.output.alliance,
        choice=rules.summarise_growth.output.choice,
        # Only the reported model of each rater is read (growth_reported_models.csv).
        fits=expand(fit_file("growth", "{name}"), name=GROWTH_NAMES),
    output:
        constant=report(
            "results/tables/tipping_points.csv",
            caption="../../report/captions/tipping_points.rst",
            category="2. Aim (a): growth",
        ),
        growing="results/tables/tipping_points_growing.csv",
        sentences="results/tables/tipping_point_sentences.csv",
        # The weight of each arm's shift: share of its patients missing, per rater and month.
        weights="results/tables/tipping_point_weights.csv",
        figure=report(
            "results/figures/tipping_points.png",
            caption="../../report/captions/tipping_points_figure.rst",
            category="2. Aim (a): growth",
        ),
    log:
        "logs/tipping_points.log",
    benchmark:
        "logs/benchmarks/tipping_points.tsv"
    conda:
        CONDA_ENV
    params:
        delta=config["missing_data"]["delta"],
        months=config["instrument"]["months"],
        summary={
            key: config["summary"][key]
            for key in ("ci_prob", "rope_wai", "decision_prob")
        },
    script:
        "../scripts/tipping_points.py"
