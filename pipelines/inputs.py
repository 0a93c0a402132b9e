"""Recipe inputs -> input items for the ingest stage.

A glob gives paths; a manifest (JSONL or CSV) gives rows with `path`, optional `id`, optional
`metadata` (object) and optional `annotations` (list of {start_s, end_s, text, kind}). A bad
manifest row becomes an input item that ingest records as failed (`bad_manifest_row`), so one
typo never hides the good rows.
"""

from __future__ import annotations

import csv
import glob as globlib
import json
import os
from pathlib import Path

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from curation.files import file_problem

if TYPE_CHECKING:
    from pipelines.recipe import Recipe


class Annotation(BaseModel):
    model_config = ConfigDict(extra="ignore")
    start_s: float = Field(ge=0, allow_inf_nan=False)  # JSON's 1e400 parses as inf
    end_s: float = Field(ge=0, allow_inf_nan=False)
    text: str
    kind: str = "caption"

    @model_validator(mode="after")
    def _order(self):
        if self.end_s < self.start_s:
            raise ValueError(f"end_s ({self.end_s}) is before start_s ({self.start_s})")
        return self


class ManifestRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1)
    id: str | None = None
    metadata: dict = Field(default_factory=dict)
    annotations: list[Annotation] = Field(default_factory=list)
    # a JSON file with {"events": [...]} (e.g. synthetic ground truth), or subtitles (.srt, .vtt)
    annotations_file: str | None = None


def _joined(path: str, base: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p


def _resolve(path: str, base: Path) -> Path:
    # os.path.realpath, not Path.resolve: on a symlink loop resolve raises RuntimeError (3.11),
    # realpath returns the path and the regular-file check below names the loop.
    return Path(os.path.realpath(_joined(path, base)))


def read_annotations_file(path: Path) -> list[dict]:
    """The annotations of a manifest row's `annotations_file`: subtitles through the importer's
    reader (cleaned, as sentences; a bad cue is left out), else JSON events."""
    if path.suffix.lower() in (".srt", ".vtt"):
        from curation.importers import read_subtitle_file

        cues, _ = read_subtitle_file(path)
        return [c.as_annotation() for c in cues]
    events = json.loads(path.read_text())
    events = events.get("events", []) if isinstance(events, dict) else events
    return [Annotation.model_validate(e).model_dump() for e in events]


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _manifest_rows(manifest: Path) -> list[tuple[int, dict | None, str | None]]:
    """(line number, row, error) for each row of a JSONL or CSV manifest."""
    out = []
    if manifest.suffix.lower() == ".csv":
        data = manifest.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:  # keep the rows before the first bad byte
            text = data[: err.start].decode("utf-8")
            text = text[: text.rfind("\n") + 1]
            out.append((text.count("\n") + 1, None, f"not UTF-8 (the rows from this line on are not read): {err}"))
        for i, row in enumerate(csv.DictReader(text.splitlines(keepends=True)), start=2):
            row = {k: v for k, v in row.items() if k and v not in (None, "")}
            for key in ("metadata", "annotations"):
                if key in row:
                    try:
                        row[key] = json.loads(row[key])
                    except json.JSONDecodeError as err:
                        out.append((i, None, f"column {key!r} is not JSON: {err}"))
                        break
            else:
                out.append((i, row, None))
        return out
    for i, raw_line in enumerate(manifest.read_bytes().splitlines(), start=1):
        try:  # line by line, so that one line in another encoding costs only that line
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError as err:
            out.append((i, None, f"not UTF-8: {err}"))
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            out.append((i, None, f"not JSON: {err}"))
            continue
        out.append((i, row, None) if isinstance(row, dict) else (i, None, "not a JSON object"))
    return out


def list_inputs(recipe: Recipe, project_root: Path) -> list[dict]:
    """Every input item in a stable order, with `input_index` = its position."""
    roots = [_resolve(r, project_root) for r in recipe.allowed_roots]
    items: list[dict] = []

    def add(**item):
        items.append({"input_index": len(items), "source_id": None, "metadata_json": None, "annotations": [], **item})

    for spec in recipe.inputs:
        if spec.glob is not None:
            pattern = str(_resolve(spec.glob, project_root))
            for path in sorted(globlib.glob(pattern, recursive=True)):
                resolved = _resolve(path, project_root)
                problem = file_problem(path, resolved, Path(path))
                if not _inside(resolved, roots):
                    add(path=str(resolved), input_error=("outside_allowed_roots", f"{path} is outside the allowed roots {[str(r) for r in roots]}"))
                elif problem is not None:
                    add(path=str(resolved), input_error=problem)
                else:
                    add(path=str(resolved))
            continue
        manifest = _resolve(spec.manifest, project_root)
        problem = file_problem(spec.manifest, manifest, _joined(spec.manifest, project_root))
        if problem is not None:
            add(path=str(manifest), input_error=(problem[0], f"manifest {problem[1]}"))
            continue
        for line, raw, error in _manifest_rows(manifest):
            where = f"{manifest.name} line {line}"
            if error is not None:
                add(path=f"{manifest}:{line}", input_error=("bad_manifest_row", f"{where}: {error}"))
                continue
            try:
                row = ManifestRow.model_validate(raw)
            except ValidationError as err:
                first = err.errors()[0]
                loc = ".".join(str(x) for x in first["loc"]) or "row"
                add(path=str(raw.get("path", f"{manifest}:{line}")), input_error=("bad_manifest_row", f"{where}: {loc}: {first['msg']}"))
                continue
            try:
                path = _resolve(row.path, manifest.parent)
            except (ValueError, OSError) as err:  # e.g. an embedded NUL byte: no file can have that name
                add(path=repr(row.path)[:300], source_id=row.id, input_error=("bad_manifest_row", f"{where}: path: {err}"))
                continue
            if not _inside(path, roots):
                add(path=str(path), source_id=row.id, input_error=("outside_allowed_roots", f"{where}: {row.path} is outside the allowed roots"))
                continue
            problem = file_problem(row.path, path, _joined(row.path, manifest.parent))
            if problem is not None:
                add(path=str(path), source_id=row.id, input_error=(problem[0], f"{where}: {problem[1]}"))
                continue
            annotations = [a.model_dump() for a in row.annotations]
            if row.annotations_file:
                try:
                    ann_path = _resolve(row.annotations_file, manifest.parent)
                except (ValueError, OSError) as err:
                    add(path=str(path), source_id=row.id, input_error=("bad_manifest_row", f"{where}: annotations_file: {err}"))
                    continue
                if not _inside(ann_path, roots):  # never read a file the recipe does not allow
                    add(path=str(path), source_id=row.id,
                        input_error=("outside_allowed_roots", f"{where}: annotations_file {row.annotations_file} is outside the allowed roots"))
                    continue
                problem = file_problem(row.annotations_file, ann_path, _joined(row.annotations_file, manifest.parent))
                if problem is not None:
                    add(path=str(path), source_id=row.id, input_error=("bad_manifest_row", f"{where}: annotations_file {problem[1]}"))
                    continue
                try:
                    annotations += read_annotations_file(ann_path)
                except (OSError, ValueError) as err:
                    add(path=str(path), source_id=row.id, input_error=("bad_manifest_row", f"{where}: annotations_file {row.annotations_file}: {err}"))
                    continue
            add(
                path=str(path),
                source_id=row.id,
                metadata_json=json.dumps(row.metadata, sort_keys=True) if row.metadata else None,
                annotations=sorted(annotations, key=lambda a: (a["start_s"], a["end_s"])),
            )
    return items
