"""Toombos Edge: a self-hosted content job server in one Python process."""

__version__ = "0.1.0"
