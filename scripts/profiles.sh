#!/usr/bin/env bash
# Regenerate the Burgers results table: one run per profile with the defaults, one after another
# (timings stay clean), then `blowup report` prints the table and writes report.csv beside the runs.
#   bash scripts/profiles.sh                       # profiles 0..6 on the default backend (ntp)
#   PROFILES=0,1,2,3,4 bash scripts/profiles.sh backend=autograd
set -euo pipefail
PROFILES=${PROFILES:-0,1,2,3,4,5,6}
SWEEP_DIR=${SWEEP_DIR:-outputs/profiles/$(date +%Y-%m-%d_%H-%M-%S)}
blowup train -m equation=burgers "profile=${PROFILES}" "hydra.sweep.dir=${SWEEP_DIR}" "$@"
blowup report "${SWEEP_DIR}" --out "${SWEEP_DIR}"
