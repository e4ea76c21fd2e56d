"""Seeds for every stochastic step, derived from the one master seed in the config."""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import numpy as np


def derive_seed(master_seed: int, *step: str | int) -> int:
    """Return a reproducible 32-bit seed for one named step (e.g. ``"fit", "growth_gaussian"``).

    Different step names give statistically independent streams; the same master seed and step
    always give the same seed, whatever else the workflow runs.
    """
    key = [zlib.crc32(str(part).encode("utf-8")) for part in step]
    sequence = np.random.SeedSequence(entropy=int(master_seed), spawn_key=key)
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def rng_for(master_seed: int, *step: str | int) -> np.random.Generator:
    """A NumPy generator for one named step."""
    return np.random.default_rng(derive_seed(master_seed, *step))


def job_seed(master_seed: int, rule: str, wildcards: Mapping[str, str], *step: str | int) -> int:
    """The seed of one step of one Snakemake job, derived from the rule's name and its wildcards
    (sorted by name), so that every job, and every step within it, has its own stream."""
    job = [rule, *(f"{name}={value}" for name, value in sorted(dict(wildcards).items()))]
    return derive_seed(master_seed, *job, *step)


def job_seeds(master_seed: int, rule: str, wildcards: Mapping[str, str]):
    """The seed function of one Snakemake job: ``seed(*step)`` is :func:`job_seed` of the step."""

    def seed(*step: str | int) -> int:
        return job_seed(master_seed, rule, wildcards, *step)

    return seed
