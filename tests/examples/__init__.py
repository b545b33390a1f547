"""Each example, run as a user would run it."""
