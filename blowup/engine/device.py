"""What runs and timings need to know about where they run: the dtypes a config names, a clock that means
what it says on a GPU, and the device's name for the records."""

from __future__ import annotations

import platform
import time

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64}  # the config's dtype names
TIMERS = ("cpu", "wall")


class Clock:
    """Seconds: wall-clock (the default), or process CPU time (all threads; what load from other processes
    barely moves) with timer="cpu". Always wall-clock with a synchronise on CUDA, where CPU time means nothing
    and kernels run asynchronously."""

    def __init__(self, device: torch.device, timer: str = "wall"):
        self.cuda = device.type == "cuda"
        self.read = time.perf_counter if self.cuda or timer == "wall" else time.process_time
        self.name = "wall" if self.read is time.perf_counter else "cpu"

    def __call__(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return self.read()


def device_name(device: torch.device | str) -> str:
    """The GPU's name on CUDA (where one is visible), else the CPU's."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()
