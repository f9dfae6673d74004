"""Solvers shared by every equation: the optimiser phases, their stopping rule, Newton refinement."""
