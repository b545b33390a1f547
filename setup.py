"""An optional compiled build: GORUMS_MW_COMPILE=1 compiles the hot modules with mypyc.

Without it (the default) the build is pure Python; everything else about the
package is in pyproject.toml. The compiled build needs mypy and a C compiler:

    pip install "mypy>=1.11" setuptools
    GORUMS_MW_COMPILE=1 pip install --no-build-isolation .
"""

from __future__ import annotations

import os

from setuptools import setup

COMPILED = [
    "gorums_mw/_calls/answers.py",
    "gorums_mw/_calls/fanout.py",
    "gorums_mw/_calls/quorum.py",
    "gorums_mw/_calls/spec.py",
    "gorums_mw/_calls/trace.py",
    "gorums_mw/_stream/budget.py",
    "gorums_mw/_stream/framing.py",
    "gorums_mw/_stream/messages.py",
    "gorums_mw/_stream/send_queue.py",
    "gorums_mw/_stream/serving.py",
]
"""The modules every message or call passes through that compile as they are
(the others have async generators or lean on asyncio's cancellation in ways
mypyc's coroutines do not yet reproduce)."""

if os.environ.get("GORUMS_MW_COMPILE") == "1":
    from mypyc.build import mypycify

    setup(ext_modules=mypycify(COMPILED, opt_level="3"))
else:
    setup()
