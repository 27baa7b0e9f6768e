"""The stats contract's public names (DESIGN.md, "Stats contract"), where the seed document
imports them from: `from catzilla.core import get_handler_stats, get_performance_metrics`.
They live in catzilla.stats_report."""
from __future__ import annotations

from .stats_report import get_handler_stats, get_performance_metrics

__all__ = ["get_handler_stats", "get_performance_metrics"]
