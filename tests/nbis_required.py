"""The NIST NBIS reference (nbis-py 0.1.3) for the tests that compare against it.

nbis-py ships x86-64 wheels only and no source, so it is an x86-64-only test
extra: elsewhere (aarch64, a Pi) these tests are skipped saying NBIS is
unavailable on that architecture. On x86-64 the set-up installs it, so in CI
its absence is a failure, not a skip.
"""

from __future__ import annotations

import os
import platform

import pytest


def nbis_or_skip(needed_for: str):
    """The `nbis` module, or skip (also at module level) saying why it is missing."""
    try:
        import nbis  # noqa: PLC0415
    except ImportError:
        pass
    else:
        return nbis
    machine = platform.machine()
    if machine != "x86_64":
        pytest.skip(f"NBIS is unavailable on {machine} (nbis-py 0.1.3 ships x86-64 wheels only, "
                    f"see docs/arm64.md); needed for {needed_for}", allow_module_level=True)
    if os.environ.get("CI"):
        pytest.fail(f"nbis-py is missing on x86-64 (scripts/dev-setup installs it); needed for {needed_for}",
                    pytrace=False)
    pytest.skip(f"nbis-py (test extra) is not installed: run scripts/dev-setup; needed for {needed_for}",
                allow_module_level=True)
