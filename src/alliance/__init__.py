"""Bayesian reanalysis of therapeutic alliance in the ICOnnecta't trial.

Statistics and data logic live here, in small importable modules; the Snakemake scripts under
``workflow/scripts`` only read inputs, call these functions and write outputs.
"""

__version__ = "0.1.0"
