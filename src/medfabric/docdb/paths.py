"""Field paths into JSON documents: parsing MapR/MongoDB dotted notation into components.

Responsible for validating a path once, so that every SQL renderer can quote its components
blindly; it never decides what a path means when it meets an array (that is translate.py's job).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from medfabric.errors import InvalidInput

MAX_PATH_DEPTH = 8  # the generic SQL for a path doubles with each component: keep it bounded
_INDEX = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class FieldPath:
    """A parsed field path such as ``study.series[0].modality`` → ('study', 'series', '0', 'modality')."""

    components: tuple[str, ...]

    def __str__(self) -> str:
        if not self.components:
            return "(the array element)"
        return ".".join(f"`{c}`" if "." in c else c for c in self.components)

    @property
    def is_id(self) -> bool:
        return self.components == ("_id",)

    @property
    def under_id(self) -> bool:
        """A path below ``_id``: always missing, since ``_id`` is a string."""
        return len(self.components) > 1 and self.components[0] == "_id"

    def prefixes(self) -> list[FieldPath]:
        """Every leading part of the path, the path itself included: a.b.c → a, a.b, a.b.c."""
        return [FieldPath(self.components[:n]) for n in range(1, len(self.components) + 1)]


def parse_path(text: object) -> FieldPath:
    """Parse ``a.b.c``, ``a[2].b`` (an array index, like ``a.2.b``) or ```a.b`.c`` (a key with a dot)."""
    if isinstance(text, FieldPath):
        return text
    if not isinstance(text, str) or not text:
        raise InvalidInput(f"a field path must be a non-empty string, not {text!r}")
    components: list[str] = []
    position = 0
    while position <= len(text):
        if text.startswith("`", position):
            end = text.find("`", position + 1)
            if end < 0:
                raise InvalidInput(f"field path {text!r}: unclosed backquote")
            segment, position = text[position + 1 : end], end + 1
            quoted = True
        else:
            end = text.find(".", position)
            end = len(text) if end < 0 else end
            segment, position = text[position:end], end
            quoted = False
        if not quoted:
            match = _INDEX.search(segment)
            if match:
                head = segment[: match.start()]
                indexes = _INDEX.findall(segment[match.start() :])
                if "".join(f"[{i}]" for i in indexes) != segment[match.start() :]:
                    raise InvalidInput(f"field path {text!r}: malformed array index in {segment!r}")
                segment_parts = [head, *indexes] if head else indexes
            else:
                segment_parts = [segment]
        else:
            segment_parts = [segment]
        for part in segment_parts:
            _check_component(text, part, quoted)
            components.append(part)
        if position == len(text):
            break
        if text[position] != ".":
            raise InvalidInput(f"field path {text!r}: expected '.' after a backquoted name")
        position += 1
        if position == len(text):
            raise InvalidInput(f"field path {text!r} ends with '.'")
    if len(components) > MAX_PATH_DEPTH:
        raise InvalidInput(f"field path {text!r} is deeper than {MAX_PATH_DEPTH} components")
    return FieldPath(tuple(components))


def _check_component(text: str, part: str, quoted: bool) -> None:
    if not part:
        raise InvalidInput(f"field path {text!r} has an empty component")
    if part.startswith("$") and not quoted:
        raise InvalidInput(f"field path {text!r}: {part!r} looks like an operator, not a field name")
    if '"' in part or "\x00" in part or "`" in part:
        raise InvalidInput(f"field path {text!r}: field names may not contain '\"', '`' or NUL")


def is_array_index(component: str) -> bool:
    return component.isascii() and component.isdigit() and len(component) < 10
