"""Snakemake adapter: render results/report.html from the workflow's tables and figures."""

from pathlib import Path

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

from alliance.report import build_context, render

inputs = dict(smk.input.items())
inputs["figures"] = {
    name.removeprefix("fig_"): path for name, path in inputs.items() if name.startswith("fig_")
}
context = build_context(inputs, smk.params.config, project_dir=Path(smk.input.template).parents[1])
html = render(context, Path(smk.input.template).parent)
Path(smk.output.html).write_text(html, encoding="utf-8")
log.info("report written to %s (%d kB)", smk.output.html, len(html) // 1024)
