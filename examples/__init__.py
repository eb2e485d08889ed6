"""Worked examples: objectives of your own, tuned by hho-tune (run from the repository root)."""
