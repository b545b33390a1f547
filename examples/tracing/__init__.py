"""The spans of a storage run on the console: ``python -m examples.tracing``."""
