"""`blowup bench`: what each derivative backend costs, per order, network size, point count and device.

Every cell times a scalar loss on the n-th input derivative (forward) and its backward w.r.t. the
parameters, against the plain order-0 forward + backward of the same network and points; a second
kind of cell times one full training step of the equation `train_step.equation`, built as `blowup train`
builds it. Results go to bench.csv (one row per cell, skipped cells included with their reason), two
plots and a table.

Cells that would take too long or too much memory are skipped, not run: a backend's time and memory
are extrapolated from its two highest orders measured so far (nested autograd's grow geometrically with
the order), and `max_order` caps a backend outright. The jax peer (jax.experimental.jet under jit) is imported here
only, and only when asked for and installed.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from blowup.config import config_dir
from blowup.engine.derivatives import input_derivatives
from blowup.engine.device import DTYPES, TIMERS, Clock, device_name
from blowup.engine.models import MLP
from blowup.equations import EQUATIONS, build_problem
from blowup.errors import ConfigError
from blowup.problem import Problem
from blowup.solvers.losses import total_loss
from blowup.training import logs

BACKENDS = ("autograd", "ntp", "jax")
COLUMNS = [
    "kind",
    "device",
    "dtype",
    "backend",
    "order",
    "profile",
    "width",
    "depth",
    "points",
    "status",
    "reason",
    "runs",
    "forward_ms",
    "forward_iqr_ms",
    "backward_ms",
    "backward_iqr_ms",
    "total_ms",
    "total_iqr_ms",
    "total_min_ms",
    "plain_ms",
    "ratio_to_plain",
    "speedup_vs_autograd",
    "compile_s",
    "peak_mem_mb",
    "mem_method",
    "timer",
    "threads",
]


def check_config(cfg: DictConfig) -> None:
    def require(ok, key, allowed):
        if not ok:
            raise ConfigError(f"{key}={OmegaConf.select(cfg, key)!r} is invalid: allowed {allowed}")

    require(all(b in BACKENDS for b in cfg.backends), "backends", "a list from " + ", ".join(BACKENDS))
    require(cfg.train_step.equation in EQUATIONS, "train_step.equation", "one of " + ", ".join(EQUATIONS))
    require(
        all(b in ("autograd", "ntp") for b in cfg.train_step.backends),
        "train_step.backends",
        "a list from autograd, ntp",
    )
    require(all(isinstance(n, int) and n >= 0 for n in cfg.orders), "orders", "a list of integers >= 0")
    require(
        all(isinstance(k, int) and k >= 0 for k in cfg.train_step.profiles),
        "train_step.profiles",
        "a list of integers >= 0",
    )
    for key in ("widths", "depths", "points"):
        require(all(isinstance(v, int) and v >= 1 for v in cfg[key]), key, "a list of integers >= 1")
    require(
        cfg.devices == "auto" or all(d in ("cpu", "cuda") for d in cfg.devices),
        "devices",
        "auto or a list from cpu, cuda",
    )
    require(cfg.dtype in DTYPES, "dtype", "one of " + ", ".join(DTYPES))
    require(cfg.timer in TIMERS, "timer", "one of " + ", ".join(TIMERS))
    require(cfg.threads is None or cfg.threads >= 1, "threads", "null or an integer >= 1")
    require(cfg.warmup >= 0 and cfg.repeats >= 1, "repeats", "repeats >= 1 (and warmup >= 0)")
    for key in ("max_call_s", "max_memory_mb", "max_cell_s"):
        require(cfg[key] > 0, key, "a number > 0")


# --- measuring one cell ------------------------------------------------------------------------
class PeakMemory:
    """Peak memory of one call, in MB. CUDA: max_memory_allocated. CPU: the process's peak resident set
    (Linux VmHWM, reset through /proc/self/clear_refs after returning freed heap with malloc_trim):
    an estimate that includes allocator overhead. None where neither is available."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.libc = _libc()
        self.method = "cuda_max_allocated" if self.cuda else ("rss_hwm" if self.libc and _can_reset_hwm() else "none")

    def __call__(self, fn) -> float | None:
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fn()
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - base) / 2**20
        if self.method == "none":
            fn()
            return None
        self.libc.malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
        base = _proc_status("VmRSS")
        fn()
        return max(_proc_status("VmHWM") - base, 0) / 2**20


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _can_reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _proc_status("VmHWM") > 0
    except OSError:
        return False


def _proc_status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Timing:
    forward: list[float] = field(default_factory=list)
    backward: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    plain: list[float] = field(default_factory=list)
    peak_mem_mb: float | None = None
    first_s: float = 0.0


def measure(cell, clock: Clock, memory: PeakMemory, cfg: DictConfig, baseline=None) -> Timing:
    """Warm up, then repeat. Peak memory comes from the last warm-up call (the first if that is slow:
    a second-long call has nothing left to warm and is not worth running twice); the repeats stop
    once the cell has taken max_cell_s. Each repeat first times the baseline (the plain order-0
    forward + backward), so a cell's ratio to it compares calls made moments apart: on a shared
    machine, load that comes and goes over a run moves both alike."""
    timing = Timing()

    def call(forward, backward):
        start = clock()
        loss = forward()
        mid = clock()
        backward(loss)
        end = clock()
        return mid - start, end - mid, end - start

    first = []
    timing.peak_mem_mb = memory(lambda: first.append(call(*cell)))
    timing.first_s = first[0][2]
    if timing.first_s < 1.0:
        for _ in range(cfg.warmup - 2):
            call(*cell)
        if cfg.warmup > 1:
            timing.peak_mem_mb = memory(lambda: call(*cell))
    spent = timing.first_s
    for _ in range(cfg.repeats):
        if baseline is not None:  # twice: the first re-warms what the cell's last call evicted
            call(*baseline)
            timing.plain.append(call(*baseline)[2])
        f, b, t = call(*cell)
        timing.forward.append(f)
        timing.backward.append(b)
        timing.total.append(t)
        spent += t
        if spent > cfg.max_cell_s:
            break
    return timing


def _ms(values: list[float]) -> float:
    return statistics.median(values) * 1e3 if values else math.nan


def _iqr_ms(values: list[float]) -> float:
    if len(values) < 2:
        return math.nan
    q = statistics.quantiles(values, n=4, method="inclusive")
    return (q[2] - q[0]) * 1e3


def _extrapolate(history: list[tuple[int, float, float | None]], order: int) -> tuple[float, float | None, str]:
    """(seconds, MB, from which orders) at `order`, log-linear through the two highest orders measured
    (costs only grow with the order, so a falling fit is held flat)."""
    (o1, t1, m1), (o2, t2, m2) = history[-2:]
    steps = (order - o2) / (o2 - o1)
    seconds = t2 * max(t2 / t1, 1.0) ** steps
    memory = m2 * max(m2 / m1, 1.0) ** steps if m1 and m2 else None
    return seconds, memory, f"orders {o1}, {o2}"


# --- what a cell runs --------------------------------------------------------------------------
def derivative_cell(net: MLP, x: torch.Tensor, order: int, backend: str):
    """(forward -> loss, backward): the scalar loss sum((d^n u / dx^n)^2) and its parameter gradient.
    Order 0 of `plain` is the baseline: net(x) on a tensor, no derivative machinery at all."""

    def forward():
        net.zero_grad(set_to_none=True)
        if backend == "plain":
            return net(x).square().sum()
        return input_derivatives(net, x, order, backend)[order].square().sum()

    return forward, lambda loss: loss.backward()


def train_config(steps: DictConfig, profile: int, backend: str) -> DictConfig:
    """The config `blowup train` composes for the bench's training step at this profile and backend."""
    overrides = [f"equation={steps.equation}", f"profile={profile}", f"sobolev={steps.sobolev}", f"backend={backend}"]
    if GlobalHydra.instance().is_initialized():  # inside `blowup bench`: Hydra already knows the config dir
        return compose("train", overrides=overrides)
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return compose("train", overrides=overrides)


def seeded_problem(cfg: DictConfig, seed: int, device: torch.device) -> Problem:
    """The problem as `blowup train` builds it, its network drawn from `seed`."""
    torch.manual_seed(seed)
    return build_problem(cfg).to(device)


def plain_cell(problem: Problem):
    """The baseline of a training step: its network's plain order-0 forward + backward on the points of the
    problem's first residual term."""
    net = next(m for m in problem.modules() if isinstance(m, MLP))
    points = next(iter(problem.terms().values()))[0]
    return derivative_cell(net, points, 0, "plain")


def train_step_cell(problem: Problem):
    def forward():
        problem.zero_grad(set_to_none=True)
        return total_loss(problem.residuals())

    return forward, lambda loss: loss.backward()


def jax_cell(net: MLP, x: torch.Tensor, order: int, threads: int | None):
    """The same network, points and loss in JAX: jet (Taylor mode) under jit, value_and_grad w.r.t. the
    parameters. Returns (call, compile seconds, the loss value for a cross-check)."""
    jax = import_jax(threads)
    import jax.numpy as jnp
    from jax.experimental.jet import jet

    jax.config.update("jax_enable_x64", x.dtype == torch.float64)
    layers = [m for m in net if isinstance(m, torch.nn.Linear)]
    params = [
        (jnp.asarray(m.weight.detach().cpu().numpy()), jnp.asarray(m.bias.detach().cpu().numpy())) for m in layers
    ]
    points = jnp.asarray(x.detach().cpu().numpy())

    def mlp(params, h):
        for w, b in params[:-1]:
            h = jnp.tanh(h @ w.T + b)
        w, b = params[-1]
        return h @ w.T + b

    def loss(params):
        if order == 0:
            return jnp.sum(mlp(params, points) ** 2)
        series = [jnp.ones_like(points)] + [jnp.zeros_like(points)] * (order - 1)
        _, out = jet(lambda h: mlp(params, h), (points,), (series,))  # out[k-1]: the k-th derivative
        return jnp.sum(out[-1] ** 2)

    step = jax.jit(jax.value_and_grad(loss))
    start = time.perf_counter()
    value = jax.block_until_ready(step(params))[0]
    return (lambda: jax.block_until_ready(step(params))), time.perf_counter() - start, float(value)


def import_jax(threads: int | None):
    """jax, or ImportError. XLA reads its thread flags when its CPU backend starts, so set them first."""
    if threads is not None:
        os.environ.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={threads}")
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # no "no TPU here" notices
    import jax
    from jax.experimental import jet  # noqa: F401

    return jax


def jax_available(threads: int | None) -> bool:
    try:
        import_jax(threads)
    except ImportError:
        return False
    return True


# --- the sweep ---------------------------------------------------------------------------------
def devices(cfg: DictConfig) -> list[str]:
    if cfg.devices == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return list(cfg.devices)


class Bench:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.rows: list[dict] = []
        self.history: dict[tuple, list] = {}  # (kind, backend, device, width, depth, points) -> [(order, s, MB)]
        self.has_jax = "jax" in cfg.backends and jax_available(cfg.threads)
        self.problem_name: str | None = None  # the class of the problem whose training steps are timed

    def row(self, **fields) -> dict:
        row = {c: None for c in COLUMNS} | {"dtype": self.cfg.dtype, "threads": torch.get_num_threads()} | fields
        self.rows.append(row)
        return row

    def skip_reason(self, key: tuple, backend: str, order: int) -> str | None:
        cfg = self.cfg
        cap = cfg.max_order.get(backend) if cfg.max_order else None
        if cap is not None and order > cap:
            return f"order {order} > max_order.{backend}={cap}"
        history = self.history.get(key, [])
        if len(history) < 2:
            return None
        seconds, memory, source = _extrapolate(history, order)
        if seconds > cfg.max_call_s:
            return f"predicted {seconds:.3g} s per call > max_call_s={cfg.max_call_s} (extrapolated from {source})"
        if memory is not None and memory > cfg.max_memory_mb:
            return f"predicted {memory:.4g} MB > max_memory_mb={cfg.max_memory_mb} (extrapolated from {source})"
        return None

    def run_cell(self, key: tuple, order: int, make, clock: Clock, memory: PeakMemory, baseline=None, **fields) -> dict:
        """Measure one cell, or record why not; time and memory feed the next order's prediction."""
        device, backend = fields["device"], fields["backend"]
        base = dict(order=order, timer=clock.name, mem_method=memory.method, **fields)
        if device == "cuda" and not torch.cuda.is_available():
            return self.row(status="skipped", reason="no CUDA device", **base)
        reason = self.skip_reason(key, backend, order)
        if reason:
            return self.row(status="skipped", reason=reason, **base)
        compile_s = None
        try:
            made = make()
            if backend == "jax":
                call, compile_s, _ = made
                made = (call, lambda _: None)
            timing = measure(made, clock, memory, self.cfg, baseline)
        except (torch.cuda.OutOfMemoryError, MemoryError) as err:
            return self.row(status="skipped", reason=f"out of memory: {str(err).splitlines()[0][:200]}", **base)
        except Exception as err:  # noqa: BLE001 - one broken cell must not lose the rest of the sweep
            return self.row(status="error", reason=f"{type(err).__name__}: {str(err).splitlines()[0][:200]}", **base)
        finally:
            if device == "cuda":
                torch.cuda.empty_cache()
        self.history.setdefault(key, []).append((order, timing.first_s, timing.peak_mem_mb))
        split = backend != "jax"  # jax's jitted value_and_grad is one call: total only
        plain_ms = _ms(timing.plain) if baseline is not None else _ms(timing.total)
        return self.row(
            status="ok",
            runs=len(timing.total),
            compile_s=compile_s,
            peak_mem_mb=timing.peak_mem_mb,
            forward_ms=_ms(timing.forward) if split else math.nan,
            forward_iqr_ms=_iqr_ms(timing.forward) if split else math.nan,
            backward_ms=_ms(timing.backward) if split else math.nan,
            backward_iqr_ms=_iqr_ms(timing.backward) if split else math.nan,
            total_ms=_ms(timing.total),
            total_iqr_ms=_iqr_ms(timing.total),
            total_min_ms=min(timing.total) * 1e3,
            plain_ms=plain_ms,
            ratio_to_plain=_ms(timing.total) / plain_ms,
            **base,
        )

    def derivatives(self, device: str, width: int, depth: int, points: int) -> None:
        cfg = self.cfg
        dev = torch.device(device if device != "cuda" or torch.cuda.is_available() else "cpu")
        clock, memory = Clock(dev, cfg.timer), PeakMemory(dev)
        torch.manual_seed(cfg.seed)
        net = MLP(1, 1, width, depth).to(dev)
        x = torch.linspace(-2.0, 2.0, points, device=dev).view(-1, 1)
        shape = dict(kind="derivatives", device=device, width=width, depth=depth, points=points)
        plain = derivative_cell(net, x, 0, "plain")
        self.run_cell(("plain",) + tuple(shape.values()), 0, lambda: plain, clock, memory, backend="plain", **shape)
        for backend in cfg.backends:
            key = (backend,) + tuple(shape.values())
            for order in cfg.orders:
                if backend == "jax":
                    unavailable = (
                        "jax is not installed (pip install jax)"
                        if not self.has_jax
                        else "the jax peer runs on cpu only"
                        if device != "cpu"
                        else None
                    )
                    if unavailable:
                        self.row(
                            status="skipped",
                            reason=unavailable,
                            order=order,
                            backend=backend,
                            timer=clock.name,
                            **shape,
                        )
                        continue
                    make = lambda order=order: self._checked_jax(net, x, order)  # noqa: E731
                else:
                    make = lambda order=order, backend=backend: derivative_cell(net, x, order, backend)  # noqa: E731
                self.run_cell(key, order, make, clock, memory, plain, backend=backend, **shape)

    def _checked_jax(self, net, x, order):
        call, compile_s, value = jax_cell(net, x, order, self.cfg.threads)
        ref = derivative_cell(net, x, order, "ntp")[0]().item()
        if not math.isclose(value, ref, rel_tol=1e-6, abs_tol=1e-12):
            raise ValueError(f"jax loss {value!r} != ntp loss {ref!r}")
        return call, compile_s, value

    def train_steps(self, device: str) -> None:
        cfg, steps = self.cfg, self.cfg.train_step
        dev = torch.device(device if device != "cuda" or torch.cuda.is_available() else "cpu")
        clock, memory = Clock(dev, cfg.timer), PeakMemory(dev)
        first = train_config(steps, steps.profiles[0], "ntp")
        model = first.equation.model
        shape = dict(
            kind="train_step", device=device, width=model.width, depth=model.depth, points=first.equation.points
        )
        reference = seeded_problem(first, cfg.seed, dev)
        plain = plain_cell(reference)  # the network every step builds
        self.problem_name = type(reference).__name__
        self.run_cell(("plain",) + tuple(shape.values()), 0, lambda: plain, clock, memory, backend="plain", **shape)
        for backend in steps.backends:
            key = (backend,) + tuple(shape.values())
            for k in steps.profiles:
                problem = seeded_problem(train_config(steps, k, backend), cfg.seed, dev)
                self.run_cell(
                    key,
                    problem.derivative_order(),
                    lambda problem=problem: train_step_cell(problem),
                    clock,
                    memory,
                    plain,
                    backend=backend,
                    profile=k,
                    **shape,
                )

    def frame(self) -> pd.DataFrame:
        """All rows, with each cell's speed-up over autograd at the same order and shape, as the ratio
        of their ratios to plain: each normalised by its own interleaved baseline."""
        df = pd.DataFrame(self.rows, columns=COLUMNS)
        df = df.astype({c: "Int64" for c in ("order", "profile", "width", "depth", "points", "runs", "threads")})
        same = ["kind", "device", "width", "depth", "points", "order"]
        autograd = df[(df.backend == "autograd") & (df.status == "ok")].set_index(same).ratio_to_plain
        df["speedup_vs_autograd"] = [
            autograd.get(tuple(row[same]), math.nan) / row.ratio_to_plain
            if row.backend not in ("autograd", "plain") and row.status == "ok"
            else math.nan
            for _, row in df.iterrows()
        ]
        return df


# --- outputs -----------------------------------------------------------------------------------
def console_table(df: pd.DataFrame, problem_name: str) -> list[Table]:
    """Per network shape: n | each backend's median ms | ntp's ratio to plain order-0 | speed-ups."""
    tables = []
    derivs = df[df.kind == "derivatives"]
    for shape, group in derivs.groupby(["device", "width", "depth", "points"], sort=False):
        plain = group[group.backend == "plain"].total_ms
        backends = [b for b in group.backend.unique() if b != "plain"]
        title = (
            f"{shape[0]}  width {shape[1]}  depth {shape[2]}  {shape[3]} points  "
            f"(plain order-0 forward+backward {plain.iloc[0]:.3f} ms)"
            if len(plain)
            else str(shape)
        )
        table = Table(title=title)
        table.add_column("n", justify="right")
        for b in backends:
            table.add_column(f"{b} ms", justify="right")
        if "ntp" in backends:
            table.add_column("ntp / order-0", justify="right")
            table.add_column("budget 2(n+1)", justify="right")
            for b in ("autograd", "jax"):
                if b in backends:
                    table.add_column(f"ntp speed-up vs {b}", justify="right")
        for order, cells in group[group.backend != "plain"].groupby("order"):
            by = {r.backend: r for r in cells.itertuples()}
            line = [str(order)] + [_cell_text(by.get(b)) for b in backends]
            if "ntp" in backends:
                ntp = by.get("ntp")
                ok = ntp is not None and ntp.status == "ok"
                line += [f"{ntp.ratio_to_plain:.2f}" if ok else "-", str(2 * (order + 1))]
                for b in ("autograd", "jax"):
                    if b in backends:
                        other = by.get(b)
                        good = ok and other is not None and other.status == "ok"
                        line.append(f"{other.ratio_to_plain / ntp.ratio_to_plain:.3g}x" if good else "-")
            table.add_row(*line)
        tables.append(table)
    steps = df[df.kind == "train_step"]
    if len(steps):
        table = Table(title=f"{problem_name} training step (loss + backward)")
        for col in ("device", "backend", "profile k", "derivatives", "ms", "x plain order-0", "peak MB"):
            table.add_column(col, justify="right")
        for r in steps.itertuples():
            table.add_row(
                r.device,
                r.backend,
                "-" if pd.isna(r.profile) else str(int(r.profile)),
                str(r.order),
                _cell_text(r),
                "-" if pd.isna(r.ratio_to_plain) else f"{r.ratio_to_plain:.1f}",
                "-" if r.peak_mem_mb is None or pd.isna(r.peak_mem_mb) else f"{r.peak_mem_mb:.1f}",
            )
        tables.append(table)
    return tables


def _cell_text(row) -> str:
    if row is None:
        return ""
    if row.status == "ok":
        return f"{row.total_ms:.3f}"
    return row.status


def plot(df: pd.DataFrame, run_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    derivs = df[(df.kind == "derivatives") & (df.status == "ok")]
    if derivs.empty:
        return []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (device, width, depth, points, backend), g in derivs.groupby(["device", "width", "depth", "points", "backend"]):
        label = f"{backend} ({device}, {width}x{depth}, {points} pts)"
        if backend == "plain":
            ax.axhline(
                g.total_ms.iloc[0], color="gray", ls=":", lw=1, label=f"plain order 0 ({device}, {width}x{depth})"
            )
            orders = sorted(derivs.order.unique())
            ax.plot(
                orders,
                [2 * (n + 1) * g.total_ms.iloc[0] for n in orders],
                color="gray",
                ls="--",
                lw=1,
                label="budget 2(n+1) x plain",
            )
        else:
            ax.semilogy(g.order, g.total_ms, "o-", label=label)
    ax.set(
        xlabel="derivative order n",
        ylabel="forward + backward, median ms",
        yscale="log",
        title="time per derivative order",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(run_dir / "bench_time.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ntp = derivs[derivs.backend == "ntp"]
    for base in ("autograd", "jax"):
        other = derivs[derivs.backend == base]
        joined = ntp.merge(other, on=["device", "width", "depth", "points", "order"], suffixes=("", "_other"))
        for (device, width, depth, points), g in joined.groupby(["device", "width", "depth", "points"]):
            ax.semilogy(
                g.order,
                g.ratio_to_plain_other / g.ratio_to_plain,
                "o-",
                label=f"vs {base} ({device}, {width}x{depth}, {points} pts)",
            )
    ax.axhline(1, color="gray", ls=":", lw=1)
    ax.set(xlabel="derivative order n", ylabel="speed-up of ntp (x)", yscale="log", title="ntp speed-up")
    if ax.lines[1:]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(run_dir / "bench_speedup.png", dpi=110)
    plt.close(fig)
    return ["bench_time.png", "bench_speedup.png"]


def targets(df: pd.DataFrame) -> dict:
    """The issue's targets, read off the rows: ntp within 2(n+1) of plain order-0 (n <= 16), at least
    500x nested autograd at n = 10, no slower than jax at n = 10, a Burgers step within 30x plain."""
    ok = df[df.status == "ok"]
    ntp = ok[(ok.kind == "derivatives") & (ok.backend == "ntp") & (ok.order <= 16)]
    worst = (ntp.ratio_to_plain / (2 * (ntp.order + 1))).max() if len(ntp) else math.nan
    out = {"ntp_ratio_over_budget_max": None if math.isnan(worst) else float(worst)}
    at10 = df[(df.kind == "derivatives") & (df.order == 10)]
    for backend, field_name in (("autograd", "ntp_speedup_vs_autograd_n10"), ("jax", "ntp_speedup_vs_jax_n10")):
        rows = at10[at10.backend == backend]
        ntp10 = at10[(at10.backend == "ntp") & (at10.status == "ok")]
        if len(rows) and rows.status.iloc[0] == "ok" and len(ntp10):
            out[field_name] = float(rows.ratio_to_plain.iloc[0] / ntp10.ratio_to_plain.iloc[0])
        elif len(rows):
            out[field_name] = f"{rows.status.iloc[0]}: {rows.reason.iloc[0]}"
    steps = ok[(ok.kind == "train_step") & (ok.backend == "ntp")]
    out["train_step_ratio_to_plain"] = {int(r.profile): float(r.ratio_to_plain) for r in steps.itertuples()}
    return out


def run(cfg: DictConfig, run_dir: Path) -> dict:
    check_config(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    torch.set_default_dtype(DTYPES[cfg.dtype])
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))

    bench = Bench(cfg)
    with logs.console.status("benchmarking") as status:
        for device in devices(cfg):
            for width in cfg.widths:
                for depth in cfg.depths:
                    for points in cfg.points:
                        status.update(f"derivatives: {device}, width {width}, depth {depth}, {points} points")
                        bench.derivatives(device, width, depth, points)
            if cfg.train_step.backends and cfg.train_step.profiles:
                status.update(f"training steps: {device}")
                bench.train_steps(device)

    df = bench.frame()
    df.to_csv(run_dir / "bench.csv", index=False)
    plots = plot(df, run_dir) if cfg.plots else []
    for table in console_table(df, bench.problem_name):
        logs.console.print(table)
    summary = {
        "csv": str(run_dir / "bench.csv"),
        "plots": plots,
        "rows": len(df),
        "measured": int((df.status == "ok").sum()),
        "skipped": int((df.status == "skipped").sum()),
        "errors": int((df.status == "error").sum()),
        "targets": targets(df),
        "timer": df.timer.dropna().iloc[0] if df.timer.notna().any() else cfg.timer,
        "threads": torch.get_num_threads(),
        "jax": bench.has_jax,
        "device_names": {d: device_name(d) for d in devices(cfg)},
        "wall_time_s": time.perf_counter() - started,
        "status": "completed",
        "meta": logs.environment(),
    }
    logs.write_json(run_dir / "summary.json", summary)
    logs.console.print(logs.summary_table({k: v for k, v in summary.items() if k != "targets"} | summary["targets"]))
    return summary
