#!/usr/bin/env bash
# Create mbrl-lib's own virtual environment for the speed benchmarks (BENCHMARKS.md §2-3).
#
#   bash benchmarks/peers/setup_mbrl.sh [VENV_DIR]     (default: benchmarks/.peers/mbrl-venv)
#
# mbrl 0.2.0 pins hydra-core==1.0.3 (fails to import on Python 3.11) and omegaconf<2.1, so it is
# installed with --no-deps, then its run-time imports are installed with hydra-core 1.3.2 and
# omegaconf 2.3.0, which work. torch==2.13.0 goes in first: an open `torch` requirement would
# pull several GB of CUDA packages (the CPU wheel is what `torch==2.13.0` resolves to here).
# Only what `mbrl.models`, `mbrl.planning` and `mbrl.util.common` import is installed (no
# jupyter, tensorboard, pytest or sk-video, which the benchmarks never touch).
# The venv directory gets a `.gitignore` holding `*`, so git never sees it.
# Idempotent: a venv that already imports mbrl is left as it is. Exit status 0 on success.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${1:-${MBRL_VENV:-$HERE/../.peers/mbrl-venv}}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import mbrl.models, mbrl.planning, mbrl.util.common" 2>/dev/null; then
    echo "mbrl venv ready: $VENV"
    exit 0
fi
mkdir -p "$VENV"
printf '*\n' > "$VENV/.gitignore"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" --no-deps "mbrl==0.2.0"
"${PIP[@]}" "hydra-core==1.3.2" "omegaconf==2.3.0" "gymnasium==0.26.3" \
    "numpy<2" termcolor tqdm matplotlib imageio packaging
"$VENV/bin/python" -c "import mbrl, mbrl.models, mbrl.planning, mbrl.util.common; print('mbrl', mbrl.__version__, 'ready in', '$VENV')"
