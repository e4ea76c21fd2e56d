# Stage 6: the reanalysis report, one self-contained HTML file.


rule render_report:
    input:
        unpack(report_inputs),
        template="report/templates/report.html.j2",
    output:
        html="results/report.html",
    log:
        "logs/render_report.log",
    benchmark:
        "logs/benchmarks/render_report.tsv"
    conda:
        CONDA_ENV
    params:
        # The report shows the whole configuration, so any edit of it renders the report again
        # (but the validation study's, which the report does not use).
        config={key: value for key, value in config.items() if key != "validation"},
    script:
        "../scripts/render_report.py"
