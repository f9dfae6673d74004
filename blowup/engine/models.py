"""Networks. Each forward accepts a tensor or a `Jet`, so one definition serves both backends."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from blowup.engine.jet import Jet, propagate


@dataclass
class ModelConfig:
    """The MLP's size, as an equation config group spells it (`equation.model.width=...`)."""

    width: int = 24
    depth: int = 3


class MLP(nn.Sequential):
    """Plain tanh MLP: `depth` hidden layers of `width`, linear output.

    Equation-specific embeddings (symmetry, boundary conditions) wrap it rather than live inside it.
    """

    def __init__(self, in_dim: int = 1, out_dim: int = 1, width: int = 24, depth: int = 3):
        if depth < 1 or width < 1:
            raise ValueError(f"MLP needs depth >= 1 and width >= 1, got depth={depth}, width={width}")
        layers: list[nn.Module] = []
        sizes = [in_dim] + [width] * depth
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.Tanh()]
        layers.append(nn.Linear(width, out_dim))
        super().__init__(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: Tensor | Jet) -> Tensor | Jet:
        return propagate(self, x) if isinstance(x, Jet) else super().forward(x)
