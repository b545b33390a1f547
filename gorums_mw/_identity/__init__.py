"""Who is calling: addresses, the claims callers make, and their check against the connection."""
