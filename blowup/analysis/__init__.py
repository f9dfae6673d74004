"""What runs on finished runs: stability spectra, reports, benchmarks."""
