"""Recommendation model versions: trainModel, recommendationModels, promoteModel."""
