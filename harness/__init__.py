"""sgcd-bench harness: benchmarks as environments, inspect-ai tasks, scorers, model providers."""
