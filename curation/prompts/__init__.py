"""Versioned prompt templates: `curation/prompts/<name>.v<N>.md`.

A template file has a YAML front matter (name, version, purpose) and two sections, `## system`
and `## user`, with `$placeholders` (string.Template). Change a prompt = add `<name>.v<N+1>.md`
and point the recipe's stage at it: the version goes into every cache key and output row, so old
and new outputs never mix silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

import yaml

PROMPTS_DIR = Path(__file__).parent
_SECTION = re.compile(r"^## (system|user)\s*$", re.MULTILINE)


class PromptError(ValueError):
    pass


@dataclass(frozen=True)
class Prompt:
    version: str  # e.g. "think.v1": what rows and cache keys record
    system: str
    user: str
    meta: dict

    def messages(self, **values) -> list[dict]:
        """Chat messages with the placeholders filled; a missing value is a bug, not a blank."""
        try:
            system = Template(self.system).substitute(values)
            user = Template(self.user).substitute(values)
        except KeyError as err:
            raise PromptError(f"prompt {self.version}: no value for ${err.args[0]}") from None
        return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def load_prompt(version: str) -> Prompt:
    """The template `<version>.md`, e.g. load_prompt("think.v1")."""
    path = PROMPTS_DIR / f"{version}.md"
    if not re.fullmatch(r"[a-z_]+\.v\d+", version) or not path.is_file():
        known = sorted(p.stem for p in PROMPTS_DIR.glob("*.v*.md"))
        raise PromptError(f"unknown prompt {version!r}; known prompts: {', '.join(known)}")
    text = path.read_text()
    meta: dict = {}
    if text.startswith("---\n"):
        head, _, text = text[4:].partition("\n---\n")
        meta = yaml.safe_load(head) or {}
    parts = _SECTION.split(text)
    sections = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    if "user" not in sections:
        raise PromptError(f"prompt {path} has no '## user' section")
    return Prompt(version=version, system=sections.get("system", ""), user=sections["user"], meta=meta)
