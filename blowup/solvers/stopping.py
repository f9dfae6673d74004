"""When a phase stops: once its loss has stopped falling, not after a fixed count.

Each phase has a step budget (`steps`, a safety net) and a convergence test: the phase has converged
once its best loss has fallen by less than a fraction `rtol` over the last `patience` steps. The best
loss, not the last, so that Adam's noise and rejected steps neither end a phase nor keep it going.
A phase with `accept_every` also ends "accepted" as soon as the problem accepts the result as it stands
(`Problem.judges_results`): a network already in reach of the equation's own refinement needs no more steps
(in a PINN study, one whose own figures already pass the equation's check).
"""

from __future__ import annotations

from collections import deque

# reasons a phase ends by itself: a resumed run does not continue it (one that ran out of steps, "max_steps",
# continues when given more)
FINAL_REASONS = ("accepted", "converged", "stalled")


class Convergence:
    """Tracks a phase's best loss; `update(loss)` is True once the phase has converged."""

    def __init__(self, patience: int, rtol: float):
        self.patience, self.rtol = patience, rtol
        self.best: deque[float] = deque(maxlen=patience + 1)  # best-so-far, the last patience + 1 steps

    def update(self, loss: float) -> bool:
        self.best.append(min(loss, self.best[-1]) if self.best else loss)
        if self.rtol <= 0 or len(self.best) <= self.patience:
            return False
        return self.best[-1] > (1 - self.rtol) * self.best[0]

    def state_dict(self) -> dict:
        return {"best": list(self.best)}

    def load_state_dict(self, state: dict) -> None:
        self.best.extend(state["best"])
