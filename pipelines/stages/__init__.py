"""The stage registry: name -> Stage. A recipe lists stages by these names, in this order.

To add a stage: write `pipelines/stages/<name>.py` exposing `STAGE` (see ingest.py, segment.py)
and put its name in ORDER.
"""

from __future__ import annotations

import importlib
import importlib.util

from pipelines.stage import Stage

ORDER = ["ingest", "segment", "perceive", "graph", "qa", "think", "check", "judge", "export"]

REGISTRY: dict[str, Stage] = {
    name: importlib.import_module(f"pipelines.stages.{name}").STAGE
    for name in ORDER
    if importlib.util.find_spec(f"pipelines.stages.{name}") is not None
}
