"""JSON Schema of the workload file, for editor completion (`cws-workload schema`)."""

from __future__ import annotations

from typing import Any

from orchestrator.spec import (
    CREATE_PARAMETERS,
    DEFAULTS_KEYS,
    ENGINE_KEYS,
    FOLLOW_UP_KEYS,
    MAX_COUNT,
    RESOURCE_TYPES,
    RULE_KEYS,
)

_DESCRIPTIONS = {
    "type": "Resource type: kp (key pair), sg (security group), vs (volume), vm (virtual machine), image.",
    "resource": "The provider's resource id, e.g. standard.small; the URI is type/provider/region/resource.",
    "resourceUri": "A whole resource URI, type/provider/region/resourceId, instead of resource/provider/region.",
    "provider": "Provider name; defaults to defaults.provider.",
    "region": "Region name; defaults to defaults.region.",
    "depends_on": "Resources that must be ready first, besides those referenced with ${...}.",
    "count": "Number of copies; inside, ${count.index} is the copy's index.",
    "metadata": "Free-form metadata sent with the create, e.g. name and description.",
    "imageUri": "Image to boot, e.g. image/hpcloud/nova/ami-00000075 or ${image1.resourceUri}.",
    "keyPairId": "Key pair instance id, e.g. ${kp1.instanceId}.",
    "securityGroupIds": "Security group instance ids, e.g. [${sg1.instanceId}].",
    "sizeInGBytes": "Volume size in GB.",
    "rules": "Access rules added with add-access once the group exists.",
    "attachTo": "VM to attach the volume to, e.g. ${vm1.instanceId}.",
    "deviceName": "Device name of the attached volume; default /dev/vdb.",
    "from": "The VM the image is made from, e.g. ${vm1.instanceId}.",
}


def _property(key: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"description": _DESCRIPTIONS.get(key, key)}
    if key == "count":
        schema["type"] = "integer"
        schema["minimum"] = 0
        schema["maximum"] = MAX_COUNT
    elif key in ("metadata",):
        schema["type"] = ["object", "null"]
    elif key in ("depends_on", "securityGroupIds"):
        # A string is one name for depends_on, and a list-valued reference such as
        # ${web_sg[*].instanceId} for securityGroupIds.
        schema["anyOf"] = [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
    elif key == "rules":
        schema["type"] = "array"
        schema["items"] = {
            "type": "object",
            "required": list(RULE_KEYS),
            "additionalProperties": False,
            "properties": {rule_key: {"type": ["string", "integer"]} for rule_key in RULE_KEYS},
        }
    elif key == "sizeInGBytes":
        schema["type"] = ["integer", "string"]
    elif key == "type":
        schema["enum"] = list(RESOURCE_TYPES)
    else:
        schema["type"] = "string"
    return schema


def spec_json_schema() -> dict[str, Any]:
    resource_variants = []
    for type_name in RESOURCE_TYPES:
        keys = ENGINE_KEYS + CREATE_PARAMETERS[type_name] + FOLLOW_UP_KEYS[type_name]
        properties = {key: _property(key) for key in keys}
        properties["type"] = {"const": type_name, "description": _DESCRIPTIONS["type"]}
        resource_variants.append(
            {
                "type": "object",
                "required": ["type", "from"] if type_name == "image" else ["type"],
                "additionalProperties": False,
                "properties": properties,
            }
        )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "cws-workload workload file",
        "type": "object",
        "required": ["workload", "resources"],
        "additionalProperties": False,
        "properties": {
            "workload": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_-]*$", "description": "Workload name."},
            "defaults": {
                "type": "object",
                "additionalProperties": False,
                "properties": {key: {"type": "string"} for key in DEFAULTS_KEYS},
            },
            "resources": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {"oneOf": resource_variants},
            },
            "outputs": {"type": "object", "description": "Named values, usually ${name.field} references."},
            "settings": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "deadlines": {
                        "type": "object",
                        "description": "Seconds a request of each type may stay in-progress before it counts as lost.",
                        "additionalProperties": False,
                        "properties": {type_name: {"type": "number", "exclusiveMinimum": 0} for type_name in RESOURCE_TYPES},
                    },
                    "max_attempts": {"type": "integer", "minimum": 1},
                },
            },
        },
    }
