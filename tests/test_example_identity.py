"""The identity example runs as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_identity_example() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.identity"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "replica-2: hello replica-2, you are node 2" in out
    assert "external: hello external, you are an external client (ID 0)" in out
    assert "spoofer: refused with UNAUTHENTICATED" in out
    assert "span gorums.peer.reject" in out
    assert "live configuration: [2, 3]" in out and "live configuration: [3]" in out
    assert "final: <InboundManager id=1 peers=[2, 3] clients=0>" in out
