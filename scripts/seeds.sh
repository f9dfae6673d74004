#!/usr/bin/env bash
# The Burgers results over seeds (issue "find the profile on every run"): defaults only, one run at a
# time, then one row per run in results/burgers_seeds.csv and the per-k worst and median in
# results/burgers_seeds.md. Blocks (each its own sweep dir, rerun with the same SWEEP_ROOT to resume):
#   bash scripts/seeds.sh                        # k = 0..6 x seeds 0-9, torch's default threads
#   BLOCK=threads1 bash scripts/seeds.sh         # k = 0..6, seed 0, threads=1
#   BLOCK=high bash scripts/seeds.sh             # k = 7..10 x seeds 0-4
# A run that ends not_converged exits non-zero; the sweep goes on (set +e) and the row says so.
set -uo pipefail
SWEEP_ROOT=${SWEEP_ROOT:-outputs/seeds}
case "${BLOCK:-default}" in
  default)  args=("profile=0,1,2,3,4,5,6" "seed=0,1,2,3,4,5,6,7,8,9") ;;
  threads1) args=("profile=0,1,2,3,4,5,6" "seed=0" "threads=1") ;;
  high)     args=("seed=0,1,2,3,4" "profile=7,8,9,10") ;;  # every k gets seed 0 before any gets seed 1
  *) echo "BLOCK must be one of default, threads1, high" >&2; exit 2 ;;
esac
blowup train -m equation=burgers "${args[@]}" "hydra.sweep.dir=${SWEEP_ROOT}/${BLOCK:-default}" "$@"
python3 scripts/seed_table.py "${SWEEP_ROOT}" --out results
