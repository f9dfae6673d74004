#!/usr/bin/env bash
# Install blowup into the current Python. torch goes first, on its own: an unpinned torch pulled in as
# a dependency would download the newest CUDA build (several GB). A machine that already has torch
# (a GPU box with its CUDA build) keeps it; one without gets torch 2.13.0 (CPU wheel where pip has
# one locally, the default build elsewhere).
#   bash scripts/install.sh            # the package
#   bash scripts/install.sh test       # and the test tools; any extras: test,joblib,slurm,jax
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c "import torch" 2>/dev/null || "$PYTHON" -m pip install --quiet "torch==2.13.0"
extras=${1:+[$1]}
"$PYTHON" -m pip install --quiet -e ".${extras}"
