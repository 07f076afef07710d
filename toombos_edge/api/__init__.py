"""Thin HTTP handlers grouped by resource: parse, call one service, render."""
