"""rsd: Risk Semantic Distillation for end-to-end autonomous driving."""

__version__ = "0.1.0"
