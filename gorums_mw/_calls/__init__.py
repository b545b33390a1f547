"""Calls on nodes and configurations: the fan-out, quorums, replies, interception, tracing."""
