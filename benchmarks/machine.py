"""What a benchmark ran on: written into every results JSON."""

from __future__ import annotations

from forethought.runtime import machine_info as _machine_info

PACKAGES = ("forethought", "torch", "numpy", "gymnasium", "stable-baselines3", "transformers")


def machine_info() -> dict:
    return _machine_info(PACKAGES)
