"""τ³-airline (tau2-bench v1.0.x airline domain): database, 14 tools, evaluator, episodes."""
