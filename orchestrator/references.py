"""`${name.path}` references between resources: parsing, listing and substitution.

A reference reads a field of another resource once it exists:

    ${kp1.instanceId}               one resource
    ${web[0].attributes.publicIpAddress}   one copy of a resource with `count`
    ${web[*].instanceId}            a list with the field of every copy
    ${count.index}                  the copy's own index, inside a resource with `count`

A string that is exactly one reference takes the referenced value's type (a
list for `[*]`); a reference inside a longer string is formatted into it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

REFERENCE_PATTERN = re.compile(
    r"\$\{\s*(?P<name>[A-Za-z_][A-Za-z0-9_-]*)"
    r"(?:\[(?P<index>\d+|\*)\])?"
    r"(?:\.(?P<path>[A-Za-z_][A-Za-z0-9_.-]*))?\s*\}"
)
ANY_REFERENCE_START = re.compile(r"\$\{")

# The first path segment a reference may read, and whether it takes a sub-path.
FIELDS_WITH_SUBPATH = ("attributes", "parameters", "metadata")
PLAIN_FIELDS = ("instanceId", "resourceUri", "instanceStatus")


@dataclass(frozen=True)
class Reference:
    """One `${...}` occurrence: the resource name, an optional copy index, and a field path."""

    name: str
    index: int | str | None
    path: str
    text: str
    offset: int

    @property
    def is_count_index(self) -> bool:
        return self.name == "count" and self.path == "index"

    @property
    def is_splat(self) -> bool:
        return self.index == "*"

    def field_error(self) -> str | None:
        """Return why the field path cannot be read, or None when it has a valid shape."""
        if not self.path:
            return (
                f"reference {self.text} names no field; write e.g. ${{{self.name}.instanceId}}"
            )
        head, _, rest = self.path.partition(".")
        if head in PLAIN_FIELDS and not rest:
            return None
        if head in FIELDS_WITH_SUBPATH and rest:
            return None
        if head in FIELDS_WITH_SUBPATH:
            return f"reference {self.text} needs a key after '{head}', e.g. {head}.name"
        allowed = ", ".join(PLAIN_FIELDS + tuple(f"{f}.*" for f in FIELDS_WITH_SUBPATH))
        return f"reference {self.text} reads unknown field '{self.path}'; readable fields: {allowed}"


class MalformedReference(ValueError):
    """A `${` that does not start a valid reference."""


def iter_references(text: str) -> Iterator[Reference]:
    """Yield every reference in a string; raise MalformedReference on a broken `${`."""
    position = 0
    while True:
        start = ANY_REFERENCE_START.search(text, position)
        if start is None:
            return
        match = REFERENCE_PATTERN.match(text, start.start())
        if match is None:
            end = text.find("}", start.start())
            fragment = text[start.start() : end + 1 if end >= 0 else len(text)]
            raise MalformedReference(
                f"malformed reference {fragment!r}; expected ${{name.field}}, "
                "${name[0].field}, ${name[*].field} or ${count.index}"
            )
        raw_index = match.group("index")
        index: int | str | None = None
        if raw_index == "*":
            index = "*"
        elif raw_index is not None:
            index = int(raw_index)
        yield Reference(
            name=match.group("name"),
            index=index,
            path=match.group("path") or "",
            text=match.group(0),
            offset=match.start(),
        )
        position = match.end()


def walk_strings(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Yield (path, string) for every string inside nested dicts and lists."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk_strings(item, path + (key,))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from walk_strings(item, path + (position,))


def substitute(value: Any, lookup: Callable[[Reference], Any]) -> Any:
    """Return a copy of value with every reference replaced by lookup(reference)."""
    if isinstance(value, dict):
        return {key: substitute(item, lookup) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, lookup) for item in value]
    if not isinstance(value, str) or "${" not in value:
        return value

    references = list(iter_references(value))
    if len(references) == 1 and references[0].text == value.strip():
        return lookup(references[0])

    parts: list[str] = []
    position = 0
    for reference in references:
        parts.append(value[position : reference.offset])
        resolved = lookup(reference)
        parts.append(resolved if isinstance(resolved, str) else _format_scalar(resolved))
        position = reference.offset + len(reference.text)
    parts.append(value[position:])
    return "".join(parts)


def _format_scalar(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_format_scalar(item) for item in value)
    if value is None:
        return ""
    return str(value)


def read_path(document: dict[str, Any], path: str) -> Any:
    """Read a dotted path such as `attributes.publicIpAddress` from a resource's outputs.

    Raise KeyError with the missing segment when the document lacks it.
    """
    current: Any = document
    for segment in path.split("."):
        if not isinstance(current, dict) or segment not in current:
            raise KeyError(segment)
        current = current[segment]
    return current
