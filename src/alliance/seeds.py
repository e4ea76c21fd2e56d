"""Seeds for every stochastic step, derived from the one master seed in the config."""

from __future__ import annotations

import zlib

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
