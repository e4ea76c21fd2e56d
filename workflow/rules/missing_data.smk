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
