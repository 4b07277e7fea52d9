"""Sibling-Guided Credit Distillation (arXiv 2606.12634) and the RL core it shares with the baselines."""
