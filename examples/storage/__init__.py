"""The replicated register example: ``python -m examples.storage``."""
