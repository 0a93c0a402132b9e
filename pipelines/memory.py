"""Keeping Python's cyclic garbage collector out of the way of row-heavy code.

Stages build and drop hundreds of thousands of small dicts (rows, verdicts, records) that hold no
reference cycles. The cyclic GC rescans every live container each few thousand allocations, so a
part of 5,000 chains, or an export writing a million lines, would spend up to half of its time
rescanning rows that reference counting frees anyway. Shared by the stages and the streaming of
their inputs (one home: a stage does not import another stage for it).
"""

from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def gc_paused():
    """Pause the cyclic GC while rows are built and dropped (they hold no cycles; reference
    counting still frees them)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
