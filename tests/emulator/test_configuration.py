"""Profiles, the catalog, retention and the OpenAPI document."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from orchestrator.emulator import DEMO_API_KEY, DEMO_API_SECRET, DEMO_OWNER_ID, NO_PAYMENT_API_KEY, ManualClock
from orchestrator.emulator.actions import PHASES, REQUEST_ACTIONS
from orchestrator.emulator.catalog import load_catalog
from orchestrator.emulator.errors import CatalogError, ProfileError
from orchestrator.emulator.profile import Distribution, Profile, load_profile
from tests.conftest import RunningEmulator
from tests.emulator.conftest import Api

PUBLIC_OPERATIONS = {
    ("post", "/api/resource/{type}/{provider}/{region}/{resourceId}"),
    ("get", "/api/request/{requestId}"),
    ("get", "/api/request"),
    ("get", "/api/instance/{instanceId}"),
    ("get", "/api/instance"),
    ("delete", "/api/instance/{instanceId}"),
    ("post", "/api/instance/{instanceId}"),
    ("put", "/api/instance/{instanceId}"),
    ("get", "/api/catalog"),
}


def test_shipped_profiles_load() -> None:
    tutorial = load_profile("tutorial")
    fast = load_profile("fast")
    assert tutorial.scale == 1.0
    assert tutorial.key_bits == 2048
    assert fast.key_bits == 1024
    assert fast.scale < tutorial.scale
    assert load_profile(None).name == "fast"
    assert load_profile(tutorial) is tutorial

    rng = random.Random(1)
    assert tutorial.sample_seconds("kp.create", rng) == pytest.approx(0.9)
    assert tutorial.sample_seconds("vm.create", rng) == pytest.approx(3.4)
    assert 330 <= tutorial.sample_seconds("vm.boot", rng) <= 380
    assert 90 <= tutorial.sample_seconds("image.build", rng) <= 120
    assert fast.sample_seconds("vm.boot", rng) == pytest.approx(tutorial.sample_seconds("vm.boot", random.Random(7)) * fast.scale, rel=0.2)


def test_every_action_has_a_tutorial_duration() -> None:
    tutorial = load_profile("tutorial")
    for action in REQUEST_ACTIONS:
        assert action in tutorial.durations, action


def test_fast_profile_finishes_tutorial_workload_quickly() -> None:
    """Key pair, VM create and boot, then the image build: a few seconds at most."""
    fast = load_profile("fast")
    worst = {key: fast.durations[key] for key in ("kp.create", "vm.create", "vm.boot", "vm.create.image", "image.build")}
    upper_bounds = [distribution.parameters[-1] if distribution.kind != "lognormal" else 0 for distribution in worst.values()]
    assert sum(upper_bounds) * fast.scale < 5


def test_distributions_sample_in_range() -> None:
    rng = random.Random(5)
    fixed = Distribution.parse({"fixed": {"seconds": 2}}, "test")
    uniform = Distribution.parse({"uniform": {"low": 1, "high": 3}}, "test")
    lognormal = Distribution.parse({"lognormal": {"median": 10, "sigma": 0.5}}, "test")
    assert fixed.sample(rng) == 2
    assert all(1 <= uniform.sample(rng) <= 3 for _ in range(100))
    samples = sorted(lognormal.sample(rng) for _ in range(401))
    assert 7 < samples[200] < 14
    assert lognormal.to_dict() == {"lognormal": {"median": 10.0, "sigma": 0.5}}


def test_phase_without_duration_takes_none() -> None:
    profile = Profile(durations={"default": Distribution("fixed", (5.0,))})
    rng = random.Random(0)
    assert profile.sample_seconds("kp.create", rng) == 5.0
    for phase in PHASES:
        assert profile.sample_seconds(phase, rng) == 0.0


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"durations": {"vm.fly": {"fixed": {"seconds": 1}}}}, "vm.fly"),
        ({"durations": {"kp.create": {"gamma": {"k": 1}}}}, "gamma"),
        ({"durations": {"kp.create": {"uniform": {"low": 3, "high": 1}}}}, "low 3.0 is above high 1.0"),
        ({"durations": {"kp.create": {"fixed": {"seconds": -1}}}}, "kp.create.fixed.seconds"),
        ({"key_bits": 512}, "key_bits"),
        ({"scale": "fast"}, "scale"),
        ({"faults": {"throttle": 1.5}}, "faults.throttle"),
        ({"faults": {"fault_actions": ["kp.fly"]}}, "kp.fly"),
        ({"latency": {}}, "latency"),
    ],
)
def test_invalid_profile_named(tmp_path: Path, document: dict, named: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(ProfileError, match="bad.yaml") as raised:
        load_profile(path)
    assert named in str(raised.value)


def test_unknown_profile_lists_shipped() -> None:
    with pytest.raises(ProfileError, match="fast, tutorial"):
        load_profile("warp")


def test_shipped_catalog_has_tutorial_entries() -> None:
    catalog = load_catalog()
    region = catalog.region("hpcloud", "nova")
    assert region is not None
    assert region.connector == "openStack.compute"
    flavour = region.flavour("vm", "standard.small")
    assert flavour is not None
    assert flavour.provider_resource_id == "Standard.small"
    assert flavour.vm_facts == {"cpuCount": "2", "cpuSpeed": "1.2", "localStorage": "60", "ram": "2", "username": "ubuntu"}
    assert region.flavour("kp", "standard") is not None
    assert region.flavour("sg", "standard") is not None
    assert region.flavour("image", "standard") is not None
    for size in (10, 50, 100):
        assert region.flavour("vs", f"standard.{size}").max_size_in_gbytes == size  # type: ignore[union-attr]
    assert "ami-00000075" in region.images
    assert catalog.accounts[DEMO_API_KEY].owner_id == DEMO_OWNER_ID
    assert catalog.accounts[DEMO_API_KEY].secret == DEMO_API_SECRET
    assert catalog.accounts[NO_PAYMENT_API_KEY].has_payment_information is False
    assert len(catalog.regions) >= 2


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("accounts: []\nproviders: {}\n", "accounts"),
        ("accounts: [{apiKey: k, secret: s, ownerId: o}]\nproviders: {p: {regions: {r: {resources: {kp: {standard: {providerResourceId: s}}}}}}}\n", "connector"),
        ("accounts: [{apiKey: k, secret: s, ownerId: o}]\nproviders: {p: {connector: c, regions: {r: {resources: {db: {x: {providerResourceId: s}}}}}}}\n", "'db'"),
        ("accounts: [{apiKey: k, secret: s, ownerId: o}]\nproviders: {p: {connector: c, regions: {r: {resources: {vm: {x: {providerResourceId: s}}}}}}}\n", "cpuCount"),
        ("accounts: [{apiKey: k, secret: s, ownerId: o}]\nproviders: {p: {connector: c, regions: {r: {resources: {vs: {x: {providerResourceId: s}}}}}}}\n", "sizeInGBytes"),
        ("{nope", "not valid YAML"),
    ],
)
def test_invalid_catalog_named(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError) as raised:
        load_catalog(path)
    assert named in str(raised.value)
    assert str(path) in str(raised.value)


def test_catalog_path_replaces_shipped(emulator_server_factory: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(
        "accounts: [{apiKey: tester, secret: s3cret, ownerId: 11111111-2222-4333-8444-555555555555}]\n"
        "providers: {lab: {connector: lab.compute, regions: {one: {resources: {kp: {basic: {providerResourceId: Basic}}}}}}}\n",
        encoding="utf-8",
    )
    emulator = emulator_server_factory(catalog_path=path)
    assert emulator.client().get("/api/catalog").status_code == 401
    client = emulator.client("tester", "s3cret")
    created = client.post("/api/resource/kp/lab/one/basic", json={})
    assert created.status_code == 200, created.text
    assert created.json()["connector"] == "lab.compute"
    assert created.json()["parameters"]["kp_providerResourceId"] == "Basic"
    assert created.json()["parameters"]["zone"] == "one"


def test_catalog_endpoint(emulator_server: RunningEmulator) -> None:
    catalog = emulator_server.client().get("/api/catalog").json()
    nova = catalog["providers"]["hpcloud"]["regions"]["nova"]
    assert catalog["providers"]["hpcloud"]["connector"] == "openStack.compute"
    assert "standard.small" in nova["resources"]["vm"]
    assert nova["resources"]["kp"] == ["standard"]
    assert nova["resources"]["vs"] == ["standard.10", "standard.50", "standard.100"]
    assert {"imageUri": "image/hpcloud/nova/ami-00000075", "name": "Ubuntu Server 12.04 LTS"} in nova["images"]
    assert "amazon" in catalog["providers"]
    assert "accounts" not in catalog


def test_retention_removes_old_objects(
    emulator_server_factory: Callable[..., RunningEmulator], manual_clock: ManualClock
) -> None:
    profile = Profile(name="short-retention", durations={"default": Distribution("fixed", (0.5,))}, key_bits=1024, retention_seconds=60)
    emulator = emulator_server_factory(profile=profile, clock=manual_clock)
    api = Api(client=emulator.client(), clock=manual_clock, emulator=emulator)
    retained = api.finish(api.create("kp/hpcloud/nova/standard"), after_seconds=1)
    removed = api.finish(api.create("kp/hpcloud/nova/standard"), after_seconds=1)
    deletion = api.finish(api.delete(removed["instanceId"]), after_seconds=1)

    # Now 3 s in: the requests finished at 0.5, 1.5 and 2.5 s, and the instance was deleted at 2.5 s.
    api.clock.advance(56)
    assert api.client.get(f"/api/request/{retained['requestId']}").status_code == 200
    assert api.client.get(f"/api/instance/{removed['instanceId']}").status_code == 200

    api.clock.advance(5)
    assert api.client.get(f"/api/request/{retained['requestId']}").status_code == 404
    assert api.client.get(f"/api/request/{deletion['requestId']}").status_code == 404
    assert api.client.get(f"/api/instance/{removed['instanceId']}").status_code == 404
    assert api.instance(retained["instanceId"])["attributes"]["instanceStatus"] == "created"


def test_openapi_documents_public_endpoints(emulator_server: RunningEmulator) -> None:
    response = httpx.get(f"{emulator_server.url}/openapi.json")
    assert response.status_code == 200
    document = response.json()

    operations = {(method, path) for path, item in document["paths"].items() for method in item}
    assert operations == PUBLIC_OPERATIONS
    assert not any(path.startswith("/admin") for path in document["paths"])

    schemas = document["components"]["schemas"]
    for name in ("RequestDocument", "InstanceDocument", "ErrorBody", "CreateBody", "ActionBody", "ImageBody"):
        assert name in schemas, name
    create = document["paths"]["/api/resource/{type}/{provider}/{region}/{resourceId}"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/CreateBody"}
    for status in ("200", "400", "401", "403"):
        assert status in create["responses"]
    assert "422" not in create["responses"]
    assert document["components"]["securitySchemes"]["basicAuth"] == {"type": "http", "scheme": "basic"}
