#!/usr/bin/env bash
# The first thing to run on a machine with an NVIDIA GPU (after `bash scripts/install.sh test`): is
# blowup right and fast there? One summary file, $OUT/gpu_check.txt (default outputs/gpu_check/<time>):
# GPU name, torch and CUDA versions, and per check pass/fail and wall time:
#   1. the test suite (CPU and the device=cuda paths the tests take where a GPU is visible);
#   2. `blowup bench` on cpu and cuda (bench.csv: the CPU-vs-GPU ratio per cell);
#   3. `blowup train profile=3 device=cuda` (defaults), with its status and errors;
#   4. a tiny sweep through scripts/gpu_sweep.sh (profiles 0 1, experiment=smoke).
# Where no GPU is visible it says so and exits 0. Exit 1 if any check failed.
# A short lease can size the checks (each is the full default when unset): PYTEST_ARGS (e.g. '-m "not slow"'),
# BENCH_ARGS (e.g. "orders=[0,1,2,4,8,16] max_cell_s=3"), TRAIN_ARGS (e.g. "max_hours=0.05").
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/gpu_check/$(date +%Y-%m-%d_%H-%M-%S)}
mkdir -p "$OUT"
summary="$OUT/gpu_check.txt"
if ! python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "no CUDA GPU visible to torch: nothing to check" | tee "$summary"
    exit 0
fi
python3 - > "$summary" <<'PY'
import torch
print("gpu:", torch.cuda.get_device_name(0))
print("torch:", torch.__version__, "cuda:", torch.version.cuda)
PY
eval "pytest_args=(${PYTEST_ARGS:-})"
read -ra bench_args <<< "${BENCH_ARGS:-}"
read -ra train_args <<< "${TRAIN_ARGS:-}"
failed=0
check() {  # check NAME COMMAND...: run it, log its output, one pass/fail line with the wall time
    local name=$1; shift
    local start=$SECONDS
    if "$@" > "$OUT/$name.log" 2>&1; then status=pass; else status=FAIL; failed=1; fi
    echo "$name: $status ($((SECONDS - start)) s; log $OUT/$name.log)" | tee -a "$summary"
}
echo "pytest args: ${PYTEST_ARGS:-(full suite)}; bench args: ${BENCH_ARGS:-(defaults)}; train args: ${TRAIN_ARGS:-(defaults)}" >> "$summary"
check tests python3 -m pytest -q "${pytest_args[@]}"
check bench blowup bench devices=auto "hydra.run.dir=$OUT/bench" "${bench_args[@]}"
check train_k3 blowup train profile=3 device=cuda "hydra.run.dir=$OUT/train_k3" "${train_args[@]}"
check sweep env PROFILES="0 1" SWEEP_DIR="$OUT/sweep" AUTOGRAD_ARGS="optim.adam.steps=20" \
    bash scripts/gpu_sweep.sh experiment=smoke
python3 - "$OUT" >> "$summary" <<'PY'
import json, sys
from pathlib import Path
import pandas as pd
out = Path(sys.argv[1])
run = out / "train_k3" / "summary.json"
if run.is_file():
    s = json.loads(run.read_text())
    print(f"train k=3 cuda: status {s['status']}, |lambda err| {s['lambda_error']:.2e}, "
          f"profile err {s['profile_max_error']:.2e}, {s['wall_time_s']:.0f} s, step {s['step_time_median_s'] * 1e3:.1f} ms")
bench = out / "bench" / "bench.csv"
if bench.is_file():
    df = pd.read_csv(bench)
    ok = df[df.status == "ok"]
    keys = ["kind", "backend", "order", "width", "depth", "points"]
    both = ok.pivot_table(index=keys, columns="device", values="total_ms")
    if {"cpu", "cuda"} <= set(both.columns):
        both["cpu_over_cuda"] = both.cpu / both.cuda
        print("CPU time / GPU time per cell:")
        print(both.dropna().to_string(float_format=lambda v: f"{v:.3g}"))
PY
cat "$summary"
exit $failed
