"""Paired statistics, tables, plots and markdown reports over tidy results."""
