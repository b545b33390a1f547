"""The command line: ``protoc-gen-gorums`` (the plugin) and ``python -m gorums_mw.codegen``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from google.protobuf.compiler import plugin_pb2

from gorums_mw.codegen._plugin import generate

_USAGE = """\
protoc-gen-gorums: typed Gorums calls (x_gorums.py, x_gorums.pyi) from a .proto.

protoc runs it; it reads a CodeGeneratorRequest on stdin:

    python -m grpc_tools.protoc -I protos -I "$(python -m gorums_mw.codegen --include-dir)" \\
        --python_out=. --grpc_python_out=. --gorums_out=. protos/x.proto

(protoc finds protoc-gen-gorums on PATH, or give --plugin=protoc-gen-gorums=PATH.)
"""


def include_dir() -> str:
    """The directory that holds ``gorums.proto``, for protoc's ``-I``."""
    return str(Path(__file__).resolve().parent.parent / "proto")


def main(argv: Sequence[str] | None = None) -> int:
    """Run as protoc's plugin (no arguments), or print the include directory.

    Args:
        argv: the arguments (default ``sys.argv[1:]``): none to read a
            ``CodeGeneratorRequest`` from stdin and write the response to
            stdout; ``--include-dir`` to print where ``gorums.proto`` is.

    Returns:
        The exit code: 0, also when the response carries a generation error
        (protoc reports it), 2 for bad arguments.
    """
    parser = argparse.ArgumentParser(
        prog="protoc-gen-gorums",
        description=_USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--include-dir",
        action="store_true",
        help="print the directory holding gorums.proto (for protoc -I) and exit",
    )
    args = parser.parse_args(argv)
    if args.include_dir:
        print(include_dir())
        return 0
    if sys.stdin.isatty():
        parser.print_help(sys.stderr)
        return 2
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())
    sys.stdout.buffer.flush()
    return 0
