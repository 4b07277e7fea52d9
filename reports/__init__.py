"""Paired statistics, tables, plots and markdown reports over tidy results."""

METRICS = ("reward", "success")  # the per-row metrics a report or a comparison is computed on (--metric)
