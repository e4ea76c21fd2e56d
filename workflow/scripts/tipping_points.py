"""Snakemake adapter: the tipping-point analysis of F1 to F3 (alliance.tipping_points)."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd

from alliance.figures import save_figure, tipping_point_figure
from alliance.sampling import load_fit
from alliance.tipping_points import tipping_analysis

params = smk.params
alliance = pd.read_csv(smk.input.alliance)
choice = pd.read_csv(smk.input.choice)
fits = {
    row.rater: load_fit(
        next(path for path in smk.input.fits if path.endswith(f"/{row.rater}_{row.model}.nc")),
        groups=["estimands"],
    )
    for row in choice.itertuples()
}
analysis = tipping_analysis(fits, alliance, params.months, params.delta, params.summary)
analysis["tables"]["constant"].to_csv(smk.output.constant, index=False)
analysis["tables"]["growing"].to_csv(smk.output.growing, index=False)
analysis["sentences"].to_csv(smk.output.sentences, index=False)
analysis["weights"].to_csv(smk.output.weights, index=False)
save_figure(tipping_point_figure(analysis["tables"], analysis["thresholds"]), smk.output.figure)
log.info("tipping points:\n%s", "\n".join(analysis["sentences"]["sentence"]))
