"""Parsing and checking of request bodies, with `400` errors that name the bad value."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from orchestrator.emulator.errors import ApiError

DEVICE_NAME = re.compile(r"^/dev/[a-z][a-z0-9]{1,15}$")
MAX_SIZE_IN_GBYTES = 16_384


def invalid(message: str, code: str = "INVALID_PARAMETER") -> ApiError:
    return ApiError(400, code, message)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Parse a request body as a JSON object; an empty body is `{}`."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except UnicodeDecodeError as error:
        raise invalid(f"request body is not UTF-8: {error.reason} at byte {error.start}", "INVALID_JSON") from error
    except json.JSONDecodeError as error:
        raise invalid(
            f"request body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}", "INVALID_JSON"
        ) from error
    if not isinstance(body, dict):
        raise invalid(f"request body must be a JSON object, got a JSON {type(body).__name__}", "INVALID_BODY")
    return body


def check_keys(body: dict[str, Any], allowed: tuple[str, ...], call: str) -> None:
    unknown = [key for key in body if key not in allowed]
    if unknown:
        expected = ", ".join(allowed) if allowed else "no keys"
        raise invalid(f"unknown key {unknown[0]!r} in the body of {call}; expected {expected}", "INVALID_BODY")


def metadata_of(body: dict[str, Any]) -> dict[str, Any]:
    """Return the `metadata` object of a create body, `{}` when absent; every key is kept."""
    metadata = body.get("metadata", {})
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise invalid(f"metadata must be a JSON object, got {json.dumps(metadata)}")
    return metadata


def required_text(body: dict[str, Any], key: str, call: str) -> str:
    value = body.get(key)
    if value is None:
        raise invalid(f"missing {key} in the body of {call}")
    if not isinstance(value, str) or not value:
        raise invalid(f"{key} must be a non-empty string, got {json.dumps(value)}")
    return value


def optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise invalid(f"{key} must be a non-empty string, got {json.dumps(value)}")
    return value


def text_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise invalid(f"{key} must be a list of instance ids, got {json.dumps(value)}")
    duplicates = sorted({item for item in value if value.count(item) > 1})
    if duplicates:
        raise invalid(f"{key} names {duplicates[0]} more than once")
    return value


def size_in_gbytes(body: dict[str, Any], maximum: int) -> int | None:
    value = body.get("sizeInGBytes")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise invalid(f"sizeInGBytes must be a whole number from 1 to {maximum} for this resource, got {json.dumps(value)}")
    return value


def device_name(body: dict[str, Any]) -> str:
    value = required_text(body, "deviceName", "action=attach")
    if not DEVICE_NAME.match(value):
        raise invalid(f"deviceName {value!r} is not a device path such as /dev/vdb")
    return value


def access_rules(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Check the `rules` of an add-access body: protocol, ports and a CIDR block each."""
    rules = body.get("rules")
    if not isinstance(rules, list) or not rules:
        raise invalid(f"rules must be a non-empty list of rules, got {json.dumps(rules)}")
    return [_access_rule(rule, index) for index, rule in enumerate(rules)]


def _access_rule(rule: Any, index: int) -> dict[str, Any]:
    where = f"rules[{index}]"
    keys = ("protocol", "from-port", "to-port", "cidr-ip")
    if not isinstance(rule, dict) or set(rule) != set(keys):
        raise invalid(f"{where} must be an object with exactly the keys {', '.join(keys)}, got {json.dumps(rule)}")

    protocol = rule["protocol"]
    if protocol not in ("tcp", "udp", "icmp"):
        raise invalid(f"{where}.protocol must be tcp, udp or icmp, got {json.dumps(protocol)}")
    low, high = (-1, 255) if protocol == "icmp" else (0, 65535)
    ports = []
    for key in ("from-port", "to-port"):
        port = rule[key]
        if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= high:
            raise invalid(f"{where}.{key} must be a whole number from {low} to {high} for {protocol}, got {json.dumps(port)}")
        ports.append(port)
    if protocol != "icmp" and ports[0] > ports[1]:
        raise invalid(f"{where}: from-port {ports[0]} is above to-port {ports[1]}")

    cidr = rule["cidr-ip"]
    try:
        ipaddress.ip_network(cidr, strict=False)
    except (TypeError, ValueError) as error:
        raise invalid(f"{where}.cidr-ip {json.dumps(cidr)} is not a CIDR block such as 203.0.113.0/24") from error
    return {"protocol": protocol, "from-port": ports[0], "to-port": ports[1], "cidr-ip": cidr}


def rule_indexes(body: dict[str, Any]) -> list[int]:
    indexes = body.get("ruleIndexes")
    if (
        not isinstance(indexes, list)
        or not indexes
        or not all(isinstance(index, int) and not isinstance(index, bool) and index >= 0 for index in indexes)
    ):
        raise invalid(f"ruleIndexes must be a non-empty list of rule positions (0 or more), got {json.dumps(indexes)}")
    if len(set(indexes)) != len(indexes):
        raise invalid(f"ruleIndexes names a position more than once: {json.dumps(indexes)}")
    return indexes


def parse_flag(value: str | None, name: str) -> bool:
    """Parse a boolean query parameter such as `refresh=true`."""
    if value is None:
        return False
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise invalid(f"query parameter {name}={value!r} is not a boolean; use {name}=true or {name}=false")
