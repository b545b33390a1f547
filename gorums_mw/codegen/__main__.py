"""``python -m gorums_mw.codegen``: the protoc plugin, or ``--include-dir``."""

import sys

from gorums_mw.codegen._main import main

sys.exit(main())
