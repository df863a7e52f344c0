"""Orchestration: dataset generation, annotation, training, evaluation, driving, experiments."""
