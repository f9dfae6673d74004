"""CCF (Córdoba-Córdoba-Fontelos): self-similar profiles on a log grid with a spectral Hilbert transform."""
