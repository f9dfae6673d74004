"""Prove a refactor changed nothing: run a fixed set of `blowup train` commands on a source tree, keep every
summary.json, and compare two such collections number by number.

    python3 scripts/regression.py run  --tree /tmp/before --out /tmp/regression/before.json
    python3 scripts/regression.py run  --tree .           --out /tmp/regression/after.json
    python3 scripts/regression.py compare /tmp/regression/before.json /tmp/regression/after.json

`run` imports blowup from --tree (its own conf/ included), so the tree before a change can be a plain
`git worktree add /tmp/before <commit>`. Every run uses threads=1, so the numbers do not depend on how
many cores are free. `compare` lists every field whose value differs, except the ones that measure the
machine rather than the mathematics (times, dates, versions, the commit, the run dir), and exits 1 when any
differs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

COMMANDS = {
    **{f"burgers_k{k}": ["equation=burgers", f"profile={k}"] for k in range(5)},
    "burgers_k1_stages": ["equation=burgers", "profile=1", "equation.stages=2"],  # the frequency trials
    "burgers_k1_study": ["equation=burgers", "profile=1", "experiment=pinn_study"],  # later stages, untried
    "ccf_p0": ["equation=ccf", "profile=0"],
    "ccf_p1": ["equation=ccf", "profile=1"],
    "ccf_p0_study": ["equation=ccf", "profile=0", "experiment=pinn_study", "optim.lm.steps=300"],  # the LM phase
    "gclm_p0": ["equation=gclm"],
    "sir": ["equation=sir"],
    "decay": ["equation=decay"],
}
COMMON = ["seed=0", "threads=1"]
# fields that measure the machine or the moment, not the result
MACHINE = (
    "time",
    "_s",
    "_at",
    "date",
    "version",
    "commit",
    "dirty",
    "cpu",
    "host",
    "run_dir",
    "python",
    "torch",
    "device",
)


def run(tree: Path, out: Path, only: list[str] | None) -> None:
    summaries = json.loads(out.read_text()) if out.exists() else {}
    launcher = f"import sys; sys.path.insert(0, {str(tree.resolve())!r}); from blowup.cli import main; main()"
    with tempfile.TemporaryDirectory() as scratch:
        for name, args in COMMANDS.items():
            if only and name not in only:
                continue
            run_dir = Path(scratch) / name
            cmd = [sys.executable, "-c", launcher, "train", *args, *COMMON, f"hydra.run.dir={run_dir}"]
            env = {**os.environ, "PYTHONPATH": ""}
            proc = subprocess.run(cmd, cwd=scratch, capture_output=True, text=True, env=env)
            summary_path = run_dir / "summary.json"
            summaries[name] = json.loads(summary_path.read_text()) if summary_path.exists() else {}
            summaries[name]["_exit_code"] = proc.returncode
            print(f"{name}: exit {proc.returncode}, status {summaries[name].get('status')}", flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(summaries, indent=1, sort_keys=True))


def flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in flatten(value, f"{prefix}{key}.").items()}
    if isinstance(tree, list):
        return {k: v for i, value in enumerate(tree) for k, v in flatten(value, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): tree}


def machine_field(key: str) -> bool:
    leaf = key.rsplit(".", 1)[-1]
    return any(part in leaf for part in MACHINE)


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def compare(before_path: Path, after_path: Path) -> int:
    before, after = json.loads(before_path.read_text()), json.loads(after_path.read_text())
    differences = 0
    for name in COMMANDS:
        a, b = flatten(before.get(name, {})), flatten(after.get(name, {}))
        keys = sorted(k for k in set(a) | set(b) if not machine_field(k))
        changed = [k for k in keys if not same(a.get(k, "<absent>"), b.get(k, "<absent>"))]
        print(f"{name}: {len(keys) - len(changed)} of {len(keys)} fields identical")
        for key in changed:
            print(f"  {key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
        differences += len(changed)
    return 1 if differences else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("--tree", type=Path, default=Path("."))
    run_parser.add_argument("--out", type=Path, required=True)
    run_parser.add_argument("--only", nargs="*", choices=list(COMMANDS))
    cmp_parser = sub.add_parser("compare")
    cmp_parser.add_argument("before", type=Path)
    cmp_parser.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run(args.tree, args.out, args.only)
    else:
        sys.exit(compare(args.before, args.after))


if __name__ == "__main__":
    main()
