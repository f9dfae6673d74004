"""Before/after for the Taylor-mode engine: blowup/jet.py at a git revision against the working tree.

    python scripts/bench_engine_compare.py [REV] [--orders 1 2 4 8 16] [--reps 30]

Both engines push the same jets through the same tanh MLP (width 24, depth 3, 301 points, float64,
one thread); each call is a scalar loss on the n-th derivative plus its backward, timed in process
CPU time (the second of two back-to-back calls, so caches are warm) and interleaved with the other
engine and with the plain order-0 forward + backward, so load from other processes hits all three alike.
The old jet.py only needs torch, so it is loaded
from `git show REV:blowup/jet.py` as a standalone module.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from blowup.engine import jet
from blowup.engine.models import MLP


def load_engine(rev: str):
    source = subprocess.run(
        ["git", "show", f"{rev}:blowup/jet.py"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    path = Path(tempfile.mkdtemp()) / "jet_at_rev.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("jet_at_rev", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", nargs="?", default="HEAD")
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 4, 8, 10, 16])
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    old = load_engine(args.rev)
    net = MLP(1, 1, 24, 3)
    x = torch.linspace(-2, 2, 301).view(-1, 1)

    def plain():
        net.zero_grad(set_to_none=True)
        net(x).square().sum().backward()

    def through(engine, n):
        def call():
            net.zero_grad(set_to_none=True)
            engine.propagate(net, engine.Jet.variable(x, n)).coeffs[n].square().sum().backward()

        return call

    print(
        f"{'n':>3} {'plain ms':>9} {args.rev + ' ms':>12} {'now ms':>9} {'speed-up':>9} "
        f"{'now / plain':>12} {'budget':>7}"
    )
    for n in args.orders:
        calls = [plain, through(old, n), through(jet, n)]
        for call in calls:
            call()
        times = [[], [], []]
        for _ in range(args.reps):
            for i, call in enumerate(calls):
                call()  # untimed: re-warm what the previous call evicted
                start = time.process_time()
                call()
                times[i].append(time.process_time() - start)
        p, o, w = (statistics.median(t) * 1e3 for t in times)
        print(f"{n:>3} {p:>9.3f} {o:>12.3f} {w:>9.3f} {o / w:>8.1f}x {w / p:>12.2f} {2 * (n + 1):>7}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
