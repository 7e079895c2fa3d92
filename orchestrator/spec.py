"""Workload files: YAML text to a validated `WorkloadSpec`, with file:line:column on every problem.

A workload file has four top-level keys:

    workload: NAME            required; letters, digits, '-' and '_'
    defaults: {provider, region}
    resources: {NAME: RESOURCE, ...}
    outputs: {NAME: VALUE, ...}
    settings: {deadlines: {TYPE: SECONDS}, max_attempts: N}

Each resource has a `type` (kp, sg, vs, vm, image), a `resource` id or a whole
`resourceUri`, optional `provider` and `region`, `metadata`, `depends_on` and
`count`, and the create parameters of its type. See docs/spec.md.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import SpecError, SpecProblem
from orchestrator.references import (
    MalformedReference,
    Reference,
    iter_references,
    walk_strings,
)

RESOURCE_TYPES = ("kp", "sg", "vs", "vm", "image")
TOP_LEVEL_KEYS = ("workload", "defaults", "resources", "outputs", "settings")
DEFAULTS_KEYS = ("provider", "region")
SETTINGS_KEYS = ("deadlines", "max_attempts")

# Keys the engine reads itself; they are not sent as create parameters.
ENGINE_KEYS = ("type", "resource", "resourceUri", "provider", "region", "depends_on", "count")
# Per type: keys sent in the create body, and keys the engine acts on after the create.
CREATE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "kp": ("metadata",),
    "sg": ("metadata",),
    "vs": ("metadata", "sizeInGBytes"),
    "vm": ("metadata", "imageUri", "keyPairId", "securityGroupIds"),
    "image": ("metadata",),
}
FOLLOW_UP_KEYS: dict[str, tuple[str, ...]] = {
    "kp": (),
    "sg": ("rules",),
    "vs": ("attachTo", "deviceName"),
    "vm": (),
    "image": ("from",),
}
DEFAULT_RESOURCE_IDS = {"kp": "standard", "sg": "standard", "image": "standard"}
RULE_KEYS = ("protocol", "from-port", "to-port", "cidr-ip")

# Attributes each type's instances carry, for checking `${name.attributes.X}`.
KNOWN_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "kp": ("providerInstanceId", "instanceStatus", "transientStatus", "publicKey", "privateKey",
           "keyFingerprint"),
    "sg": ("providerInstanceId", "instanceStatus", "transientStatus", "rules"),
    "vs": ("providerInstanceId", "instanceStatus", "transientStatus", "virtualMachineId",
           "deviceName"),
    "vm": ("providerInstanceId", "instanceStatus", "transientStatus", "password",
           "privateIpAddress", "publicIpAddress"),
    "image": ("providerInstanceId", "instanceStatus", "transientStatus", "progress"),
}
# Parameters the API adds to a create, readable as `${name.parameters.X}`.
ENRICHED_PARAMETERS: dict[str, tuple[str, ...]] = {
    "vm": ("vm_providerResourceId", "zone", "cpuCount", "cpuSpeed", "localStorage", "ram",
           "username", "image_providerResourceId"),
}
SECRET_ATTRIBUTES = ("privateKey", "password")
MAX_COUNT = 100_000
# libyaml's loader, when PyYAML was built with it, composes large files several times faster.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

Path_ = tuple[Any, ...]
# Appended to a key path in the position map to find where the key itself is written.
KEY_MARK = "<key>"


@dataclass(frozen=True)
class Position:
    line: int
    column: int


@dataclass
class ResourceSpec:
    """One resource block of a workload file, before `count` is expanded."""

    name: str
    type: str
    provider: str
    region: str
    resource_id: str
    parameters: dict[str, Any]
    depends_on: list[str] = field(default_factory=list)
    count: int | None = None
    rules: list[dict[str, Any]] = field(default_factory=list)
    attach_to: str | None = None
    device_name: str | None = None
    image_from: str | None = None

    @property
    def resource_uri(self) -> str:
        return f"{self.type}/{self.provider}/{self.region}/{self.resource_id}"


@dataclass
class WorkloadSpec:
    """A validated workload file."""

    name: str
    path: str
    resources: dict[str, ResourceSpec]
    outputs: dict[str, Any]
    deadlines: dict[str, float] = field(default_factory=dict)
    max_attempts: int | None = None
    # Resources declared but rejected; references to them raise no second error.
    invalid_resources: set[str] = field(default_factory=set, repr=False)
    # The YAML text, which `positions` is computed from on first use.
    source: str = field(default="", repr=False)
    known_positions: dict[Path_, Position] | None = field(default=None, repr=False)

    @property
    def positions(self) -> dict[Path_, Position]:
        """Where each key path's value (and, under KEY_MARK, its key) is written in the file."""
        if self.known_positions is None:
            self.known_positions = {}
            _compose(self.source, _Collector(self.path), self.known_positions)
        return self.known_positions

    def position_of(self, path: Path_) -> Position:
        """Return where the value at a key path starts, or the nearest enclosing one."""
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return self.positions.get((), Position(1, 1))

    def key_position_of(self, path: Path_) -> Position:
        """Return where the key of a path is written, e.g. a resource's name."""
        return self.positions.get(path + (KEY_MARK,)) or self.position_of(path)


class _Collector:
    """Gathers problems so that one run reports all of them."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[SpecProblem] = []

    def add(self, position: Position, message: str) -> None:
        problem = SpecProblem(self.file, position.line, position.column, message)
        # A block reused through an alias repeats its problems at the same place.
        if problem not in self.problems:
            self.problems.append(problem)


def load_spec(path: str | Path) -> WorkloadSpec:
    """Read and validate a workload file; raise SpecError listing every problem found."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecProblem(file, 1, 1, "file not found; check the path")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError([SpecProblem(file, 1, 1, f"cannot read the file: {error}")]) from None
    return parse_spec(text, file)


def parse_spec(text: str, file: str = "<string>") -> WorkloadSpec:
    """Parse and validate workload YAML; raise SpecError listing every problem found.

    A plain file is read on a fast path that records no positions. When it
    has a problem, or uses anchors, tags or merge keys, it is read again with
    every position kept, so each message names its line and column.
    """
    document = _plain_document(text)
    if document is not _NOT_PLAIN:
        spec = _validate(document, file, text, None, _Collector(file))
        if spec is not None:
            return spec
    problems = _Collector(file)
    positions: dict[Path_, Position] = {}
    document = _compose(text, problems, positions)
    if problems.problems:
        raise SpecError(problems.problems)
    spec = _validate(document, file, text, positions, problems)
    if problems.problems:
        raise SpecError(problems.problems)
    assert spec is not None
    return spec


def _validate(
    document: Any, file: str, text: str, positions: dict[Path_, Position] | None, problems: _Collector
) -> WorkloadSpec | None:
    """Build and check the spec; return it, or None when a problem was collected."""
    spec = _build(document, file, positions if positions is not None else {}, problems)
    if spec is not None:
        spec.source = text
        spec.known_positions = positions
        _check_references(spec, problems)
    return None if problems.problems else spec


class _NotPlain:
    """Marks a file the fast path leaves to the full composer."""


_NOT_PLAIN: Any = _NotPlain()


class _Unusual(Exception):
    """Raised inside the fast reading for a value the composer has to report."""

_NO_KEY: Any = object()
_IMPLICIT_RESOLVERS = yaml.resolver.Resolver.yaml_implicit_resolvers
_STRING_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", _STRING_TAG)
_SCALAR_CONSTRUCTORS = yaml.constructor.SafeConstructor.yaml_constructors
# Values the composer may build from aliases, beyond one per character of the file.
MIN_VALUE_BUDGET = 100_000


def _plain_document(text: str) -> Any:
    """Build the YAML document straight from libyaml's events; return it, or _NOT_PLAIN.

    Most workload files use no anchors, aliases, tags or merge keys, and write
    each key once as a string. For those files the result equals SafeLoader's,
    in about a fifth of its time. Any other file is _NOT_PLAIN, and so is a
    file with a YAML error.
    """
    scalars: dict[str, Any] = {}
    constructor = yaml.constructor.SafeConstructor()

    def plain_scalar(value: str) -> Any:
        # Resolved as PyYAML does for an untagged plain scalar, with results cached.
        if value in scalars:
            return scalars[value]
        tag = _STRING_TAG
        for candidate, pattern in _IMPLICIT_RESOLVERS.get(value[:1] if value else "", ()):
            if pattern.match(value):
                tag = candidate
                break
        if tag == _STRING_TAG:
            result: Any = value
        else:
            node = yaml.ScalarNode(tag, value)
            result = constructor.construct_object(node, deep=True)
            if _unsupported_value(result) is not None:
                raise _Unusual
        scalars[value] = result
        return result

    # Each open container, with the key waiting for its value in a mapping.
    stack: list[tuple[Any, Any]] = []
    document: Any = _NOT_PLAIN
    documents = 0
    try:
        for event in yaml.parse(text, Loader=_SAFE_LOADER):
            kind = type(event)
            if kind is yaml.ScalarEvent:
                if event.anchor is not None or event.tag is not None:
                    return _NOT_PLAIN
                value: Any = plain_scalar(event.value) if event.implicit[0] else event.value
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                if event.anchor is not None or event.tag is not None:
                    return _NOT_PLAIN
                stack.append(({} if kind is yaml.MappingStartEvent else [], _NO_KEY))
                continue
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                value = stack.pop()[0]
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    return _NOT_PLAIN
                continue
            elif kind is yaml.AliasEvent:
                return _NOT_PLAIN
            else:
                continue
            if not stack:
                document = value
                continue
            container, key = stack[-1]
            if type(container) is list:
                container.append(value)
            elif key is _NO_KEY:
                if type(value) is not str or value in container or value == "<<":
                    return _NOT_PLAIN
                stack[-1] = (container, value)
            else:
                container[key] = value
                stack[-1] = (container, _NO_KEY)
    except (yaml.YAMLError, _Unusual):
        return _NOT_PLAIN
    # An empty file has no document and stays _NOT_PLAIN, so the full composer reports it.
    return document


def _compose(text: str, problems: _Collector, positions: dict[Path_, Position]) -> Any:
    loader = _SAFE_LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            problems.add(Position(1, 1), "the file is empty; a workload needs 'workload' and 'resources'")
            return None
        # Aliases can make a short file expand without bound, so the values built are capped.
        budget = _Budget(len(text) + MIN_VALUE_BUDGET)
        return _to_python(loader, node, (), positions, problems, budget)
    except _TooManyValues as error:
        problems.add(
            error.position,
            f"aliases here expand the file to more than {error.limit:,} values; write the repeated parts out "
            "or use fewer nested aliases",
        )
        return None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
        problems.add(where, f"invalid YAML: {_yaml_error_message(error)}")
        return None
    except yaml.YAMLError as error:
        problems.add(Position(1, 1), f"invalid YAML: {error}")
        return None
    finally:
        loader.dispose()


class _Budget:
    """The number of values the composer may still build."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.remaining = limit


class _TooManyValues(Exception):
    def __init__(self, position: Position, limit: int) -> None:
        super().__init__(f"more than {limit} values")
        self.position = position
        self.limit = limit


def _yaml_error_message(error: yaml.MarkedYAMLError) -> str:
    """Describe a YAML syntax error, with where its construct started and a likely fix."""
    problem = error.problem or error.context or "invalid YAML"
    if "\\t" in problem or "'\t'" in problem:
        return f"{problem} (a tab; indent with spaces)"
    if "another document" in problem:
        return "a workload file holds one YAML document; remove the second '---' and what follows it"
    if "undefined alias" in (error.context or "") + problem and error.problem_mark is not None:
        return f"{problem}; define the anchor with '&name' before the alias '*name' uses it"
    if error.context and error.context_mark is not None and error.problem:
        start = error.context_mark
        return f"{error.problem} ({error.context} at {start.line + 1}:{start.column + 1})"
    return problem


def _unsupported_value(value: Any) -> str | None:
    """Return why a constructed value cannot be sent as JSON, or None when it can."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a finite number; give a number or quote it"
    kind = type(value).__name__
    if isinstance(value, (dt.date, dt.datetime)):
        return f"{value.isoformat()} is read as a {kind}; quote it ('{value.isoformat()}') to keep it as text"
    return f"a {kind} value is not supported here; give text, a number, true or false"


def _to_python(
    loader: yaml.SafeLoader | yaml.CSafeLoader,
    node: yaml.Node,
    path: Path_,
    positions: dict[Path_, Position],
    problems: _Collector,
    budget: _Budget,
) -> Any:
    position = Position(node.start_mark.line + 1, node.start_mark.column + 1)
    budget.remaining -= 1
    if budget.remaining < 0:
        raise _TooManyValues(position, budget.limit)
    positions.setdefault(path, position)
    if node.tag not in _PLAIN_TAGS and (
        not isinstance(node, yaml.ScalarNode) or node.tag not in _SCALAR_CONSTRUCTORS
    ):
        problems.add(position, f"tag '{node.tag}' is not supported in a workload file; remove it")
        return None
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        merged: list[Any] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                # `<<: *defaults` (or a list of them): keys written in this mapping take precedence.
                value = _to_python(loader, value_node, path, positions, problems, budget)
                sources = value if isinstance(value, list) else [value]
                if not all(isinstance(source, dict) for source in sources):
                    problems.add(
                        Position(key_node.start_mark.line + 1, key_node.start_mark.column + 1),
                        "'<<' must merge a mapping or a list of mappings",
                    )
                    continue
                merged.extend(sources)
                continue
            key_position = Position(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(key_node, yaml.ScalarNode):
                problems.add(key_position, "a key must be text, not a list or mapping")
                continue
            key = loader.construct_object(key_node)
            if not isinstance(key, str):
                problems.add(key_position, f"key {key_node.value!r} is read as {_yaml_kind(key)}; quote it to use it as a name")
                continue
            if key in result:
                problems.add(key_position, f"duplicate key '{key}'; each key may appear once")
                continue
            positions[path + (key, KEY_MARK)] = key_position
            result[key] = _to_python(loader, value_node, path + (key,), positions, problems, budget)
        for source in merged:
            for key, value in source.items():
                result.setdefault(key, value)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_python(loader, item, path + (index,), positions, problems, budget)
            for index, item in enumerate(node.value)
        ]
    value = loader.construct_object(node)
    unsupported = _unsupported_value(value)
    if unsupported is not None:
        problems.add(position, unsupported)
        return None
    return value


def _shown(value: Any) -> str:
    """Return a value for a message: YAML's word for true, false and null, with a hint to quote it."""
    if value is None or isinstance(value, bool):
        return f"{_yaml_kind(value)} (YAML reads yes, no, on, off and an empty value so; quote the value)"
    return repr(value)


def _yaml_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"a {type(value).__name__}"


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _build(
    document: Any, file: str, positions: dict[Path_, Position], problems: _Collector
) -> WorkloadSpec | None:
    def at(path: Path_) -> Position:
        while path:
            if path + (KEY_MARK,) in positions:
                return positions[path + (KEY_MARK,)]
            if path in positions:
                return positions[path]
            path = path[:-1]
        return positions.get((), Position(1, 1))

    if not isinstance(document, dict):
        problems.add(at(()), "a workload file must be a mapping with 'workload' and 'resources'")
        return None

    for key in document:
        if key not in TOP_LEVEL_KEYS:
            problems.add(
                at((key,)),
                f"unknown top-level field '{key}'{_suggest(key, TOP_LEVEL_KEYS)} "
                f"(allowed: {', '.join(TOP_LEVEL_KEYS)})",
            )

    name = document.get("workload")
    if name is None:
        problems.add(at(()), "missing field 'workload': give the workload a name, e.g. 'workload: web'")
        name = "unnamed"
    elif not isinstance(name, str) or not NAME_PATTERN.match(name):
        problems.add(
            at(("workload",)),
            f"invalid workload name {_shown(name)}: use ASCII letters, digits, '-' and '_', "
            "starting with a letter or '_'",
        )
        name = str(name)

    defaults = document.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.add(at(("defaults",)), "'defaults' must be a mapping with 'provider' and 'region'")
        defaults = {}
    for key in defaults:
        if key not in DEFAULTS_KEYS:
            problems.add(
                at(("defaults", key)),
                f"unknown field '{key}' in defaults{_suggest(key, DEFAULTS_KEYS)} "
                f"(allowed: {', '.join(DEFAULTS_KEYS)})",
            )

    deadlines, max_attempts = _build_settings(document.get("settings"), at, problems)

    raw_resources = document.get("resources")
    resources: dict[str, ResourceSpec] = {}
    invalid_names: set[str] = set()
    if raw_resources is None:
        problems.add(at(()), "missing field 'resources': list the resources to create")
    elif not isinstance(raw_resources, dict) or not raw_resources:
        problems.add(at(("resources",)), "'resources' must be a non-empty mapping of name to resource")
    else:
        for resource_name, body in raw_resources.items():
            resource = _build_resource(resource_name, body, defaults, at, problems)
            if resource is not None:
                resources[resource_name] = resource
            else:
                invalid_names.add(resource_name)

    outputs = document.get("outputs") or {}
    if not isinstance(outputs, dict):
        problems.add(at(("outputs",)), "'outputs' must be a mapping of name to value")
        outputs = {}

    return WorkloadSpec(
        name=name,
        path=file,
        resources=resources,
        outputs=outputs,
        deadlines=deadlines,
        max_attempts=max_attempts,
        invalid_resources=invalid_names,
    )


def _build_settings(raw: Any, at: Any, problems: _Collector) -> tuple[dict[str, float], int | None]:
    if raw is None:
        return {}, None
    if not isinstance(raw, dict):
        problems.add(at(("settings",)), "'settings' must be a mapping")
        return {}, None
    for key in raw:
        if key not in SETTINGS_KEYS:
            problems.add(
                at(("settings", key)),
                f"unknown field '{key}' in settings{_suggest(key, SETTINGS_KEYS)} "
                f"(allowed: {', '.join(SETTINGS_KEYS)})",
            )
    deadlines: dict[str, float] = {}
    raw_deadlines = raw.get("deadlines") or {}
    if not isinstance(raw_deadlines, dict):
        problems.add(at(("settings", "deadlines")), "'deadlines' must map a resource type to seconds")
        raw_deadlines = {}
    for type_name, seconds in raw_deadlines.items():
        if type_name not in RESOURCE_TYPES:
            problems.add(
                at(("settings", "deadlines", type_name)),
                f"unknown resource type '{type_name}' in deadlines (allowed: {', '.join(RESOURCE_TYPES)})",
            )
        elif isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
            problems.add(
                at(("settings", "deadlines", type_name)),
                f"invalid deadline {seconds!r} for '{type_name}': give a positive number of seconds",
            )
        else:
            deadlines[type_name] = float(seconds)
    max_attempts = raw.get("max_attempts")
    if max_attempts is not None and (
        isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
    ):
        problems.add(
            at(("settings", "max_attempts")),
            f"invalid max_attempts {max_attempts!r}: give a whole number of at least 1",
        )
        max_attempts = None
    return deadlines, max_attempts


def _build_resource(
    name: str, body: Any, defaults: dict[str, Any], at: Any, problems: _Collector
) -> ResourceSpec | None:
    path: Path_ = ("resources", name)
    if not NAME_PATTERN.match(name):
        problems.add(
            at(path),
            f"invalid resource name '{name}': use letters, digits, '-' and '_', starting with a letter",
        )
        return None
    if name == "count":
        problems.add(at(path), "'count' is reserved for ${count.index}; rename the resource")
        return None
    if not isinstance(body, dict):
        problems.add(at(path), f"resource '{name}' must be a mapping with at least 'type'")
        return None

    type_name = body.get("type")
    if type_name is None:
        problems.add(at(path), f"resource '{name}' is missing 'type' (one of {', '.join(RESOURCE_TYPES)})")
        return None
    if type_name not in RESOURCE_TYPES:
        problems.add(
            at(path + ("type",)),
            f"unknown type {type_name!r} for resource '{name}'{_suggest(str(type_name), RESOURCE_TYPES)} "
            f"(allowed: {', '.join(RESOURCE_TYPES)})",
        )
        return None

    allowed = ENGINE_KEYS + CREATE_PARAMETERS[type_name] + FOLLOW_UP_KEYS[type_name]
    for key in body:
        if key not in allowed:
            problems.add(
                at(path + (key,)),
                f"unknown field '{key}' for a {type_name} resource{_suggest(key, allowed)} "
                f"(allowed: {', '.join(allowed)})",
            )

    provider, region, resource_id = _resource_location(name, type_name, body, defaults, path, at, problems)

    metadata = body.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        problems.add(at(path + ("metadata",)), "'metadata' must be a mapping, e.g. {name: VM-1}")
        metadata = {}
    parameters: dict[str, Any] = {"metadata": dict(metadata)}
    for key in CREATE_PARAMETERS[type_name]:
        if key != "metadata" and key in body:
            parameters[key] = body[key]

    size = body.get("sizeInGBytes")
    size_is_reference = isinstance(size, str) and "${" in size
    size_is_count = isinstance(size, int) and not isinstance(size, bool) and size >= 1
    if type_name == "vs" and "sizeInGBytes" in body and not size_is_reference and not size_is_count:
        problems.add(
            at(path + ("sizeInGBytes",)),
            f"invalid sizeInGBytes {_shown(size)}: give a whole number of gigabytes, e.g. 10",
        )
    if type_name == "vm" and "imageUri" not in body:
        problems.add(
            at(path),
            f"vm '{name}' needs 'imageUri', e.g. image/hpcloud/nova/ami-00000075 or ${{image1.resourceUri}}",
        )

    resource = ResourceSpec(
        name=name,
        type=type_name,
        provider=provider,
        region=region,
        resource_id=resource_id,
        parameters=parameters,
    )
    resource.depends_on = _build_depends_on(body.get("depends_on"), path, at, problems)
    resource.count = _build_count(body.get("count"), "count" in body, path, at, problems)
    _build_follow_up(resource, body, path, at, problems)
    return resource


def _resource_location(
    name: str,
    type_name: str,
    body: dict[str, Any],
    defaults: dict[str, Any],
    path: Path_,
    at: Any,
    problems: _Collector,
) -> tuple[str, str, str]:
    if "resourceUri" in body:
        uri = body["resourceUri"]
        parts = uri.split("/") if isinstance(uri, str) else []
        if len(parts) != 4 or not all(parts):
            problems.add(
                at(path + ("resourceUri",)),
                f"invalid resourceUri {uri!r}: expected type/provider/region/resourceId, "
                f"e.g. {type_name}/hpcloud/nova/standard",
            )
            return "", "", ""
        if parts[0] != type_name:
            problems.add(
                at(path + ("resourceUri",)),
                f"resourceUri {uri!r} is for type '{parts[0]}' but the resource has type '{type_name}'",
            )
        for key in ("resource", "provider", "region"):
            if key in body:
                problems.add(at(path + (key,)), f"give either 'resourceUri' or '{key}', not both")
        return parts[1], parts[2], parts[3]

    values = {}
    for key in ("provider", "region"):
        value = body.get(key, defaults.get(key))
        if value is None:
            problems.add(
                at(path),
                f"resource '{name}' has no {key}: set '{key}' on it or under 'defaults'",
            )
            value = ""
        elif not isinstance(value, str) or "/" in value or not value:
            # A value taken from `defaults` is reported where it is written.
            written_at = path + (key,) if key in body else ("defaults", key)
            problems.add(at(written_at), f"invalid {key} {_shown(value)}: give a plain name such as 'nova'")
            value = ""
        values[key] = value

    resource_id = body.get("resource", DEFAULT_RESOURCE_IDS.get(type_name))
    if resource_id is None:
        example = "standard.small" if type_name == "vm" else "standard.50"
        problems.add(
            at(path),
            f"resource '{name}' has no 'resource': give the provider's resource id, e.g. '{example}'",
        )
        resource_id = ""
    elif not isinstance(resource_id, str) or "/" in resource_id:
        problems.add(
            at(path + ("resource",)),
            f"invalid resource id {_shown(resource_id)}: give an id such as 'standard.small', "
            "or a whole 'resourceUri'",
        )
        resource_id = ""
    return values["provider"], values["region"], resource_id


def _build_depends_on(raw: Any, path: Path_, at: Any, problems: _Collector) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        problems.add(at(path + ("depends_on",)), "'depends_on' must be a resource name or a list of them, e.g. [kp1, web[0]]")
        return []
    return list(raw)


def _build_count(raw: Any, present: bool, path: Path_, at: Any, problems: _Collector) -> int | None:
    if not present:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_COUNT:
        problems.add(
            at(path + ("count",)),
            f"invalid count {raw!r}: give a whole number from 0 to {MAX_COUNT}",
        )
        return None
    return raw


def _build_follow_up(
    resource: ResourceSpec, body: dict[str, Any], path: Path_, at: Any, problems: _Collector
) -> None:
    if resource.type == "sg" and "rules" in body:
        rules = body["rules"]
        if not isinstance(rules, list):
            problems.add(at(path + ("rules",)), "'rules' must be a list of rules")
            rules = []
        for index, rule in enumerate(rules):
            rule_path = path + ("rules", index)
            if not isinstance(rule, dict):
                problems.add(at(rule_path), f"rule {index} must be a mapping of {', '.join(RULE_KEYS)}")
                continue
            for key in rule:
                if key not in RULE_KEYS:
                    problems.add(
                        at(rule_path + (key,)),
                        f"unknown rule field '{key}'{_suggest(key, RULE_KEYS)} (allowed: {', '.join(RULE_KEYS)})",
                    )
            for key in RULE_KEYS:
                if key not in rule:
                    problems.add(at(rule_path), f"rule {index} is missing '{key}'")
        resource.rules = [rule for rule in rules if isinstance(rule, dict)]

    if resource.type == "vs":
        if "attachTo" in body:
            resource.attach_to = body["attachTo"]
            resource.device_name = body.get("deviceName", "/dev/vdb")
            if not isinstance(resource.device_name, str):
                problems.add(at(path + ("deviceName",)), "'deviceName' must be a string such as /dev/vdb")
        elif "deviceName" in body:
            problems.add(at(path + ("deviceName",)), "'deviceName' needs 'attachTo' naming the VM")

    if resource.type == "image":
        source = body.get("from")
        if source is None:
            problems.add(
                at(path),
                f"image '{resource.name}' needs 'from' naming its VM, e.g. from: ${{vm1.instanceId}}",
            )
        else:
            resource.image_from = source


def _check_references(spec: WorkloadSpec, problems: _Collector) -> None:
    """Check that every reference names an existing resource and a readable field."""
    resources = spec.resources

    def check_value(value: Any, base: Path_, owner: ResourceSpec | None) -> None:
        for sub_path, text in walk_strings(value):
            try:
                references = list(iter_references(text))
            except MalformedReference as error:
                problems.add(spec.position_of(base + sub_path), str(error))
                continue
            for reference in references:
                if reference.name in spec.invalid_resources:
                    continue
                message = _reference_problem(reference, owner, resources)
                if message:
                    problems.add(spec.position_of(base + sub_path), message)

    for resource in resources.values():
        base: Path_ = ("resources", resource.name)
        check_value(resource.parameters, base, resource)
        if resource.attach_to is not None:
            check_value(resource.attach_to, base + ("attachTo",), resource)
            _check_single_reference(spec, resource.attach_to, "vm", base + ("attachTo",), problems)
        if resource.image_from is not None:
            check_value(resource.image_from, base + ("from",), resource)
            _check_single_reference(spec, resource.image_from, "vm", base + ("from",), problems)
        check_value(resource.rules, base + ("rules",), resource)
        for index, dependency in enumerate(resource.depends_on):
            problem = _depends_on_problem(dependency, resources)
            if problem:
                problems.add(spec.position_of(base + ("depends_on", index)), problem)
    check_value(spec.outputs, ("outputs",), None)


DEPENDS_ON_PATTERN = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_-]*)(?:\[(?P<index>\d+)\])?$")


def _depends_on_problem(dependency: str, resources: dict[str, ResourceSpec]) -> str | None:
    match = DEPENDS_ON_PATTERN.match(dependency)
    if match is None:
        return f"invalid depends_on entry {dependency!r}: write a resource name, or name[0] for one copy"
    name, index = match.group("name"), match.group("index")
    target = resources.get(name)
    if target is None:
        return f"depends_on names unknown resource '{name}'{_suggest(name, list(resources))}"
    if index is not None and target.count is None:
        return f"depends_on entry {dependency!r}: '{name}' has no 'count', so drop the index"
    if index is not None and target.count is not None and int(index) >= target.count:
        return (
            f"depends_on entry {dependency!r}: index {index} is out of range for '{name}' with count {target.count}"
        )
    return None


def _check_single_reference(
    spec: WorkloadSpec, value: Any, expected_type: str, path: Path_, problems: _Collector
) -> None:
    example = "${vm1.instanceId}"
    if not isinstance(value, str):
        problems.add(spec.position_of(path), f"expected a reference such as {example}, got {value!r}")
        return
    try:
        references = list(iter_references(value))
    except MalformedReference:
        return
    if len(references) != 1 or references[0].text != value.strip() or references[0].is_splat:
        problems.add(spec.position_of(path), f"expected one reference such as {example}, got {value!r}")
        return
    target = spec.resources.get(references[0].name)
    if target is not None and target.type != expected_type:
        problems.add(
            spec.position_of(path),
            f"{references[0].text} names a {target.type}; this field needs a {expected_type}",
        )


def _reference_problem(
    reference: Reference, owner: ResourceSpec | None, resources: dict[str, ResourceSpec]
) -> str | None:
    if reference.is_count_index:
        if owner is None or owner.count is None:
            return "${count.index} is only valid inside a resource with 'count'"
        return None
    if owner is not None and is_secret_reference(reference):
        return (
            f"reference {reference.text} reads a secret into '{owner.name}', where the API and plain output "
            "would show it; read secrets only under 'outputs', which show them as <sensitive>"
        )
    target = resources.get(reference.name)
    if target is None:
        return f"reference {reference.text} names unknown resource '{reference.name}'" + _suggest(
            reference.name, list(resources)
        )
    if owner is not None and target.name == owner.name:
        return f"reference {reference.text} points at its own resource"
    shape = reference.field_error()
    if shape:
        return shape
    if target.count is None and reference.index is not None:
        return f"reference {reference.text}: '{target.name}' has no 'count', so drop the index"
    if target.count is not None:
        if reference.index is None:
            return (
                f"reference {reference.text}: '{target.name}' has count {target.count}; "
                f"write ${{{target.name}[0].{reference.path}}} or ${{{target.name}[*].{reference.path}}}"
            )
        if isinstance(reference.index, int) and reference.index >= target.count:
            return (
                f"reference {reference.text}: index {reference.index} is out of range for "
                f"'{target.name}' with count {target.count}"
            )
    head, _, rest = reference.path.partition(".")
    key = rest.split(".", 1)[0]
    if head == "attributes" and key not in KNOWN_ATTRIBUTES[target.type]:
        known = KNOWN_ATTRIBUTES[target.type]
        return (
            f"reference {reference.text}: a {target.type} has no attribute '{key}'"
            f"{_suggest(key, known)} (known: {', '.join(known)})"
        )
    if head == "metadata" and key not in target.parameters.get("metadata", {}):
        return f"reference {reference.text}: '{target.name}' sets no metadata '{key}'"
    if head == "parameters":
        known_parameters = [k for k in target.parameters if k != "metadata"]
        known_parameters += list(ENRICHED_PARAMETERS.get(target.type, ()))
        if key not in known_parameters:
            return (
                f"reference {reference.text}: '{target.name}' has no parameter '{key}'"
                f"{_suggest(key, known_parameters)}"
            )
    return None


def is_secret_reference(reference: Reference) -> bool:
    """Return whether a reference reads a secret attribute (a private key or a password)."""
    head, _, rest = reference.path.partition(".")
    return head == "attributes" and rest in SECRET_ATTRIBUTES
