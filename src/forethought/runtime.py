"""The compute a command runs on: torch's CPU threads and the device, checked once at start-up,
and a description of the machine for results files."""

from __future__ import annotations

import os
import platform
from importlib import metadata

import torch

from forethought.errors import ConfigError


def configure_cpu(threads: int) -> None:
    """Use `threads` torch CPU threads (0 keeps torch's default, one per core) and flush
    subnormal floats to zero.

    Weights that get little gradient can decay (the fit's weight decay) until they are
    subnormal, and CPU arithmetic on subnormals is tens of times slower: a HalfCheetah
    ensemble's last layer took 77 ms per batch instead of 1.7 after 20,000 steps, tripling the
    planner's time per action. Values that small carry nothing a network needs."""
    if threads < 0:
        raise ConfigError("threads", "must be 0 (torch default) or more")
    if threads:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)


def check_device(device: str, flag: str = "device") -> torch.device:
    """The torch device `device` names, or a one-line error saying what this machine has."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(
            flag, f"'{device}' is not a torch device; use cpu, cuda or cuda:N"
        ) from None
    if parsed.type not in ("cpu", "cuda"):
        raise ConfigError(flag, f"'{device}' is not supported; use cpu or cuda")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                flag, f"'{device}' was asked for, but this torch build sees no CUDA GPU; use cpu"
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ConfigError(
                flag,
                f"'{device}' does not exist; this machine has {torch.cuda.device_count()} GPU(s)",
            )
    return parsed


def machine_info(
    packages: tuple[str, ...] = ("forethought", "torch", "numpy", "gymnasium"),
) -> dict:
    """CPU, cores, threads, Python, platform and the versions of `packages` (None if absent)."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }
