"""A plain-socket probe for the harness tests: ``python -m tests.multihost._probe``.

With arguments ``listen IP PORT`` it listens there, prints ``listening``, then
``accepted <peer ip>`` for each connection. Without arguments it answers
stdin commands, one line each:

- ``resolve NAME`` → ``resolved NAME IP`` (the system resolver: /etc/hosts
  inside a namespace) or ``error ...``;
- ``connect IP PORT`` → ``connected <local ip>`` or ``error ...`` (3 s bound).

It ends when stdin closes.
"""

from __future__ import annotations

import socket
import sys


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def listen(ip: str, port: int) -> None:
    with socket.create_server((ip, port)) as server:
        _say("listening")
        while True:
            conn, (peer, *_) = server.accept()
            conn.close()
            _say(f"accepted {peer}")


def answer(line: str) -> str:
    command, *args = line.split()
    try:
        if command == "resolve":
            (name,) = args
            infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
            return f"resolved {name} {infos[0][4][0]}"
        if command == "connect":
            ip, port = args
            with socket.create_connection((ip, int(port)), timeout=3) as conn:
                return f"connected {conn.getsockname()[0]}"
    except OSError as exc:
        return f"error {exc}"
    return f"error unknown command {line!r}"


def main(argv: list[str]) -> None:
    if argv and argv[0] == "listen":
        listen(argv[1], int(argv[2]))
        return
    for line in sys.stdin:
        if line.strip():
            _say(answer(line))


if __name__ == "__main__":
    main(sys.argv[1:])
