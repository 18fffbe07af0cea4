#!/usr/bin/env python3
"""Runs the deploy tests (unittest) and prints one closing line
`deploy tests: N passed, N failed`. A skipped test counts as a failure:
nothing here may pass by not running."""

from __future__ import annotations

import sys
import unittest
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    suite = unittest.defaultTestLoader.discover(str(here), pattern="test_*.py", top_level_dir=str(here))
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    bad = len(result.failures) + len(result.errors) + len(result.skipped) + len(result.unexpectedSuccesses)
    passed = result.testsRun - bad
    if result.skipped:
        print(f"{len(result.skipped)} skipped test(s) counted as failed")
    print(f"deploy tests: {passed} passed, {bad} failed")
    return 0 if bad == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
