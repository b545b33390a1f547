"""Benchmarks of gorums-mw against what users would use instead (see BENCHMARKS.md).

Not part of the test suite. Each module runs with ``python -m bench.<name>``.
"""

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # before any bench module imports grpc
