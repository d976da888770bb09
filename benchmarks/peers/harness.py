"""Shared by benchmarks/imagination.py and benchmarks/latency.py: mbrl-lib's virtual environment,
running its side as a subprocess, the matmul floor, and summary statistics.

Imported with benchmarks/ on sys.path (`from peers.harness import ...`), in forethought's venv.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
DEFAULT_VENV = HERE.parent / ".peers" / "mbrl-venv"  # holds its own `.gitignore` (`*`)
SETUP = HERE / "setup_mbrl.sh"
PEER_SCRIPT = HERE / "mbrl_bench.py"


def thread_env(threads: int) -> dict:
    """Environment for a peer subprocess with the same thread count as this process."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.pop("PYTHONPATH", None)  # nothing of forethought's venv leaks into the peer's
    return env


def ensure_mbrl(venv: Path, log) -> tuple[Path | None, str | None]:
    """Create (or reuse) mbrl-lib's venv. Returns (python, None) or (None, the exact error)."""
    python = venv / "bin" / "python"
    start = time.perf_counter()
    proc = subprocess.run(
        ["bash", str(SETUP), str(venv)], capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        return None, f"setup_mbrl.sh exited {proc.returncode}: " + "\n".join(tail)
    log(f"mbrl-lib venv ready ({time.perf_counter() - start:.0f} s): {venv}")
    return python, None


def run_peer(python: Path, task: str, spec: dict, threads: int, timeout: float) -> dict:
    """Run benchmarks/peers/mbrl_bench.py TASK in mbrl-lib's venv; its JSON, or {"error": ...}."""
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps({**spec, "threads": threads}))
        try:
            proc = subprocess.run(
                [str(python), str(PEER_SCRIPT), task, str(spec_path), str(out_path)],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=thread_env(threads),
                cwd=tmp,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"mbrl-lib {task} run exceeded {timeout:.0f} s"}
        if proc.returncode != 0 or not out_path.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            return {"error": f"mbrl_bench.py {task} exited {proc.returncode}: " + "\n".join(tail)}
        return json.loads(out_path.read_text())


def matmul_throughput(repeats: int, shapes: dict[str, tuple]) -> dict:
    """fp32 GFLOP/s of torch matmuls on this machine, at the current torch thread count.

    shapes: name -> (batch, m, k, n); batch 0 means a plain (m x k) @ (k x n) mm, else bmm.
    Each entry gets every repetition's GFLOP/s and their median.
    """
    out = {}
    gen = torch.Generator().manual_seed(0)
    for name, (batch, m, k, n) in shapes.items():
        if batch:
            a, b = torch.randn(batch, m, k, generator=gen), torch.randn(batch, k, n, generator=gen)
            bias = torch.randn(batch, 1, n, generator=gen)
            buffer = torch.empty(batch, m, n)
            flops = 2.0 * batch * m * k * n
            ops = {
                # A fresh output tensor per call, as a model without scratch buffers allocates.
                name: lambda a=a, b=b, bias=bias: torch.baddbmm(bias, a, b),
                # Into a reused output (what forethought's inference path does): the kernel alone.
                f"{name}_into_buffer": lambda a=a, b=b, o=buffer: torch.bmm(a, b, out=o),
            }
        else:
            a, b = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
            flops = 2.0 * m * k * n
            ops = {name: lambda a=a, b=b: a @ b}
        for key, op in ops.items():
            op()  # warm-up
            # Enough calls per repetition to take about 0.2 s on a ~100 GFLOP/s machine.
            calls = max(1, int(2e10 / flops))
            rates = []
            for _ in range(repeats):
                begin = time.perf_counter()
                for _ in range(calls):
                    op()
                rates.append(flops * calls / (time.perf_counter() - begin) / 1e9)
            out[key] = {"shape": [batch, m, k, n], "gflops": rates, "median_gflops": median(rates)}
    return out


def macs_per_row(in_dim: int, hidden: int, layers: int, out_dim: int) -> int:
    """Multiply-adds one input row costs in an MLP with `layers` hidden layers of `hidden`."""
    sizes = [in_dim] + [hidden] * layers + [out_dim]
    return sum(a * b for a, b in itertools.pairwise(sizes))


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
