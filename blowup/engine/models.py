"""Networks. Each forward accepts a tensor or a `Jet`, so one definition serves both backends."""

from __future__ import annotations

from dataclasses import dataclass

import torch
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


class StageNetwork(nn.Module):
    """A later stage of a multi-stage network (Wang & Lai, J. Comput. Phys. 2024): an MLP fitted to what the
    stages before it left, its output scaled by `scale` (the size of their residual) and its first layer by
    `frequency` (how fast what is left varies), so that the stage fits an O(1) function at O(1) frequency.
    A stage holds no output until `begin` sets both; it then starts from a fresh draw, adding O(scale) to the
    composite. (A zero output layer would leave the composite unchanged, but gives the first Gauss-Newton step
    nothing but the output layer to move: every hidden sensitivity is proportional to it.)

    Wang & Lai scale only the first layer's weights, for sine features; with tanh features the biases are
    scaled by frequency x half-width too, so the features' transitions spread over the interval instead of
    bunching at the origin."""

    def __init__(self, width: int, depth: int, half_width: float):
        super().__init__()
        self.net = MLP(1, 1, width, depth)
        self.half_width = half_width
        self.register_buffer("scale", torch.zeros(()))
        self.register_buffer("frequency", torch.ones(()))
        self.register_buffer("kept", torch.ones((), dtype=torch.bool))

    @property
    def begun(self) -> bool:
        return bool(self.scale != 0)

    @property
    def active(self) -> bool:
        """Begun and not dropped: part of the composite."""
        return self.begun and bool(self.kept)

    def begin(self, scale: float, frequency: float, seed: int) -> None:
        with torch.random.fork_rng(devices=[]), torch.no_grad():  # the run's own random stream is left alone
            torch.manual_seed(seed)
            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    layer.reset_parameters()
            first = self.net[0]
            first.weight.mul_(frequency)
            first.bias.mul_(frequency * self.half_width)
            self.scale.fill_(scale)
            self.frequency.fill_(frequency)
            self.kept.fill_(True)

    def drop(self) -> None:
        """Out of the composite, as trained (its figures can still be asked of it), and not begun again."""
        self.kept.fill_(False)

    def end(self) -> None:
        """Back to holding no output (a restart from a fresh first stage)."""
        self.scale.zero_()
        self.kept.fill_(True)

    def forward(self, x: Tensor | Jet) -> Tensor | Jet:
        return self.net(x) * self.scale
