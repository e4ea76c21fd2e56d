"""Snakemake adapter: the validation study's coverage and verdict tables (data contract) and its
HTML report (alliance.validation, alliance.validation_report)."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

from pathlib import Path

import pandas as pd

from alliance.sbc import sbc_table
from alliance.validation import (
    claims_true,
    coverage_table,
    stacked_replicates,
    unjudged_false_claims,
    verdict_table,
)
from alliance.validation_report import acceptance, pooled_coverage, render_validation_report

estimands = stacked_replicates(smk.input.estimands)
verdicts = stacked_replicates(smk.input.verdicts)
convergence = stacked_replicates(smk.input.convergence)
truths = {
    Path(path).stem: pd.read_csv(path, dtype={"month": str}, keep_default_na=False)
    for path in smk.input.truths
}
claims = {scenario: claims_true(truth, smk.params.summary) for scenario, truth in truths.items()}
unjudged = unjudged_false_claims(claims, verdicts)
if unjudged:  # a false claim no replicate judged would pass the false-support check unseen
    raise ValueError(
        "false claims that no replicate judged (add the models that judge them to the "
        f"scenario's validation.scenarios.<name>.models): {', '.join(unjudged)}"
    )
coverage = coverage_table(estimands)
coverage.to_csv(smk.output.coverage, index=False)
verdict_shares = verdict_table(verdicts, claims)
verdict_shares.to_csv(smk.output.verdicts, index=False)
ranks = pd.concat([pd.read_csv(path) for path in smk.input.sbc_ranks], ignore_index=True)
sbc = sbc_table(ranks, smk.params.kept_draws)
sbc.to_csv(smk.output.sbc, index=False)
checks = acceptance(pooled_coverage(coverage), verdict_shares, smk.params.scenarios, sbc)
pd.DataFrame(checks).to_csv(smk.output.acceptance, index=False)
Path(smk.output.report).write_text(
    render_validation_report(
        smk.input.template,
        coverage,
        verdict_shares,
        convergence,
        checks,
        (ranks, sbc, smk.params.kept_draws),
        smk.params.scenarios,
        smk.params.sampling,
        smk.params.summary,
    ),
    encoding="utf-8",
)
log.info("coverage and verdicts of %d scenarios written", len(truths))
