"""Seeds: every random object of the study draws from its own numpy stream,
keyed by the config's ``seed``, the cell's coordinates and what the stream is
for (its purpose), never by time, job order or which cells exist."""

from __future__ import annotations

import numpy as np

# SeedSequence spawn-key purposes of an (n, k, seed) cell: each random object has its own stream.
PURPOSE = {
    "teacher": 0,
    "start": 1,
    "stream": 2,
    "train_set": 3,
    "limit_starts": 4,
    "two_layer_v_star": 5,
    "two_layer_starts": 6,
    "two_layer_stream": 7,
    "basin_starts": 8,
}


def seed_sequence_key(config: dict, n: int, k: int, seed: int, purpose: str) -> dict:
    """Arguments of numpy.random.SeedSequence for one random object of a cell.

    The key is the cell's coordinates, never the job order, so results do
    not depend on cores, scheduling or which cells exist.
    """
    return {"entropy": int(config["seed"]), "spawn_key": (int(n), int(k), int(seed), PURPOSE[purpose])}


def seed_sequence(config: dict, n: int, k: int, seed: int, purpose: str) -> np.random.SeedSequence:
    """The SeedSequence of one random object of a cell (``seed_sequence_key``)."""
    return np.random.SeedSequence(**seed_sequence_key(config, n, k, seed, purpose))


def generator(key: dict) -> np.random.Generator:
    """A PCG64 generator from SeedSequence arguments ``key``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(**key)))


def rng(config: dict, n: int, k: int, seed: int, purpose: str) -> np.random.Generator:
    """The generator of one random object of a cell (``seed_sequence_key``)."""
    return generator(seed_sequence_key(config, n, k, seed, purpose))
