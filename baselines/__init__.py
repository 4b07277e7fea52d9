"""Baseline algorithms (GRPO, SDPO) registered on the shared RL core."""
