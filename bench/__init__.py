"""The benches, run from the repository root as ``python -m bench.<name>`` (bench/README.md)."""
