"""Who is calling: addresses, the claims callers make, and their check against the connection.

Modules, each importing only those above it:

- ``address``: ``host:port`` syntax, host names, what ``localhost`` means,
  ``normalize_addr``;
- ``peer``: node IDs, the ``Peer`` value and ``current_peer()``;
- ``connection``: the connection's side: grpc's peer string, the TLS auth context;
- ``claims``: the metadata keys, the claim types (one per dialect), their
  parser and writer, and ``identify_peer``;
- ``address_book``: the configured nodes and their IPs (names' IPs cached);
- ``identifier``: a claim checked against the connection and the configured nodes;
- ``registrar``: the interceptor's view of what identifies and registers peers.
"""
