"""The search space: a binary mask over U-Net blocks <-> Optuna trial parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import optuna


def param_name(k: int) -> str:
    return f"b{k:02d}"


def suggest_mask(trial: optuna.Trial, n_bits: int) -> list[int]:
    # Categorical {0, 1}: NSGA-II's crossover and mutation then act per bit.
    return [int(trial.suggest_categorical(param_name(k), [0, 1])) for k in range(n_bits)]


def mask_from_params(params: Mapping[str, object], n_bits: int) -> list[int]:
    return [int(params[param_name(k)]) for k in range(n_bits)]


def params_from_mask(bits: Sequence[int]) -> dict[str, int]:
    return {param_name(k): int(b) for k, b in enumerate(bits)}


def bits_str(bits: Sequence[int]) -> str:
    return "".join(str(int(b)) for b in bits)
