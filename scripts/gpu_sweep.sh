#!/usr/bin/env bash
# The benchmark a GPU box runs: every Burgers profile k = 0..6 with both derivative backends on CUDA,
# one run at a time (timings need the GPU to themselves), then `blowup report` over all of them.
#
#   scripts/gpu_sweep.sh                                  # the full sweep, default settings
#   scripts/gpu_sweep.sh optim.lm.steps=500 sobolev=2     # extra overrides go to every run
#   PROFILES="0 1" DEVICE=cpu scripts/gpu_sweep.sh experiment=smoke   # a quick try without a GPU
#   AUTOGRAD_ARGS="optim.adam.steps=100 optim.lbfgs.steps=20 optim.lm.steps=5" scripts/gpu_sweep.sh
#
# Nested autograd costs grow exponentially with k (CPU, smoke size: 0.05 s/step at k=0, 5.9 s at k=3),
# so full-length autograd runs at k=5, 6 can take days. The speed-up plot needs only the median step
# times: AUTOGRAD_ARGS (overrides for the autograd runs only) can shorten them.
#
# Each run is its own `blowup train`, so one that fails (nested autograd at high k is slow and
# memory-hungry) does not take the others down. Runs go to $SWEEP_DIR/burgers_k<k>_<backend>
# (default outputs/gpu_sweep/<date>_<time>); the report (report.csv, speedup.png, ...) goes to $SWEEP_DIR.
# Running again with the same SWEEP_DIR resumes unfinished runs from their checkpoints; finished
# runs finish at once. Ctrl-C stops the current run cleanly (it checkpoints) and ends the sweep.
set -uo pipefail

profiles=${PROFILES:-0 1 2 3 4 5 6}
device=${DEVICE:-cuda}
sweep_dir=${SWEEP_DIR:-outputs/gpu_sweep/$(date +%Y-%m-%d_%H-%M-%S)}
read -ra autograd_args <<< "${AUTOGRAD_ARGS:-}"
failed=()

for k in $profiles; do
    for backend in ntp autograd; do
        extra=()
        [[ $backend == autograd ]] && extra=("${autograd_args[@]}")
        blowup train equation=burgers "profile=$k" "backend=$backend" "device=$device" \
            "hydra.run.dir=$sweep_dir/burgers_k${k}_${backend}" "$@" "${extra[@]}"
        code=$?
        if (( code == 130 )); then
            echo "interrupted: run it again with SWEEP_DIR=$sweep_dir (and the same settings) to resume" >&2
            exit 130
        fi
        (( code == 0 )) || failed+=("k=$k $backend (exit $code)")
    done
done

blowup report "$sweep_dir"
report=$?
if (( ${#failed[@]} )); then
    printf 'failed: %s\n' "${failed[@]}" >&2
    exit 1
fi
exit $report
