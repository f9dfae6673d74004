import pytest
import torch


@pytest.fixture(autouse=True)
def float64():
    """The engine's contract is stated in float64; restore the default after each test."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
