"""Recommendation model versions: training from the database, evaluation, promotion."""
