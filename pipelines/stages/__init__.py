"""The stage registry: name -> Stage. A recipe lists stages by these names, in order.

To add a stage: write `pipelines/stages/<name>.py` exposing `STAGE` (see ingest.py, segment.py)
and add it to ORDER below (the order a recipe is expected to list them in).
"""

from __future__ import annotations

import importlib

from pipelines.stage import Stage

ORDER = ["ingest", "segment"]

REGISTRY: dict[str, Stage] = {name: importlib.import_module(f"pipelines.stages.{name}").STAGE for name in ORDER}
