"""The server side: the InboundManager, the membership of connected peers, NodeStream."""
