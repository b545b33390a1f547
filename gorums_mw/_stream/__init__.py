"""NodeStream: one bidirectional stream per pair of nodes, carrying calls both ways."""
