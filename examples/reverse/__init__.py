"""A server calling back to clients that cannot accept connections."""
