"""Snakemake adapter: patient flow, alliance descriptives and the trajectory figure."""

from alliance.runtime import start_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = start_job(smk)

import pandas as pd  # noqa: E402

from alliance.descriptives import alliance_summary, patient_flow, trajectory_figure  # noqa: E402

alliance = pd.read_csv(smk.input.alliance)
instrument = smk.params.instrument
patient_flow(alliance).to_csv(smk.output.flow, index=False)
alliance_summary(alliance, instrument["response_max"]).to_csv(
    smk.output.alliance_summary, index=False
)
figure = trajectory_figure(alliance, list(instrument["months"]))
figure.savefig(smk.output.trajectories, dpi=130, bbox_inches="tight")
log.info("descriptives written for %d patients", alliance["patient_id"].nunique())
