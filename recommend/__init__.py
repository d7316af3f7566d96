"""Recommendation models, training and serving (later issues)."""
