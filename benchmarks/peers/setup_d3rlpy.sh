#!/usr/bin/env bash
# Create d3rlpy's own virtual environment for benchmarks/offline.py (CQL, IQL, TD3+BC).
#
#   bash benchmarks/peers/setup_d3rlpy.sh [VENV_DIR]     (default: benchmarks/.peers/d3rlpy-venv)
#
# d3rlpy 2.8 pins gymnasium==1.0.0, which clashes with forethought's Gymnasium, so it lives in a
# venv of its own and the benchmark talks to it through files (an exported .npz dataset in, a
# JSON of evaluation returns out). torch==2.13.0 goes in first: an open `torch` requirement
# would pull several GB of CUDA packages; MuJoCo (the version forethought's venv uses) scores
# the MuJoCo tasks. The venv gets a `.gitignore` holding `*`.
# Idempotent: a venv that already imports d3rlpy is left as it is. Exit status 0 on success.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${1:-${D3RLPY_VENV:-$HERE/../.peers/d3rlpy-venv}}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import d3rlpy, mujoco, imageio" 2>/dev/null; then
    echo "d3rlpy venv ready: $VENV"
    exit 0
fi
mkdir -p "$VENV"
printf '*\n' > "$VENV/.gitignore"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" "d3rlpy==2.8.1"
"${PIP[@]}" "gymnasium[mujoco]==1.0.0" "mujoco==4.0.0"
"$VENV/bin/python" -c "import d3rlpy, gymnasium; print('d3rlpy', d3rlpy.__version__, 'gymnasium', gymnasium.__version__, 'ready in', '$VENV')"
