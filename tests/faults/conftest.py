"""Fault scenarios print one table at the end of the run: what was accepted, what was lost."""

from __future__ import annotations

import os

import pytest

from tests.faults.report import ROWS, render

FULL = os.environ.get("DOORBUSTER_FAULTS") == "full"


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="full fault suite only: `make faults`")
    for item in items:
        if "fault_full" in item.keywords and not FULL:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if ROWS:
        terminalreporter.write_line("")
        terminalreporter.write_line(render())
