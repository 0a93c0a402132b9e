"""The stage registry: name -> Stage. A recipe lists stages by these names, in this order.

To add a stage: write `pipelines/stages/<name>.py` exposing `STAGE` (see ingest.py, segment.py)
and put its name in ORDER.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator, Mapping

from pipelines.stage import Stage

ORDER = ["ingest", "segment", "signals", "perceive", "graph", "qa", "think", "verify", "check", "judge", "export"]


class _Registry(Mapping[str, Stage]):
    """Stage modules are imported when first asked for: a worker process that runs `segment`
    must not pay for importing the teacher client and the model code."""

    def __init__(self, names: list[str]):
        self._names = [n for n in names if importlib.util.find_spec(f"pipelines.stages.{n}") is not None]

    def __getitem__(self, name: str) -> Stage:
        if name not in self._names:
            raise KeyError(name)
        return importlib.import_module(f"pipelines.stages.{name}").STAGE

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


REGISTRY: Mapping[str, Stage] = _Registry(ORDER)
