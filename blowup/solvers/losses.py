"""The loss is a sum of squares of named, already weighted residual vectors.

Keeping the residual vector (not just the scalar loss) lets Gauss-Newton-type phases see it whole.
"""

from __future__ import annotations

import torch
from torch import Tensor


def loss_terms(residuals: dict[str, Tensor]) -> dict[str, Tensor]:
    """Each term's contribution ||r||^2 to the loss."""
    return {name: r.square().sum() for name, r in residuals.items()}


def total_loss(residuals: dict[str, Tensor]) -> Tensor:
    """The loss: the terms' contributions summed in the residuals' order (the order fixes its rounding)."""
    return sum(loss_terms(residuals).values())


def residual_vector(residuals: dict[str, Tensor]) -> Tensor:
    return torch.cat([r.flatten() for r in residuals.values()])
