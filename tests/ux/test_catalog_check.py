"""The catalog check: which values it reports, where, and when it stays silent."""

from __future__ import annotations

import anyio
import pytest

from orchestrator.catalog_check import NotInCatalog, check_catalog
from orchestrator.errors import TransportError
from orchestrator.spec import parse_spec

# The shape of `GET /api/catalog`: resource ids by type and public images, per provider and region.
CATALOG = {
    "providers": {
        "hpcloud": {
            "connector": "openStack.compute",
            "regions": {
                "nova": {
                    "zone": "nova",
                    "resources": {"kp": ["standard"], "vm": ["standard.small"], "image": ["standard"]},
                    "images": [{"imageUri": "image/hpcloud/nova/ami-00000075", "name": "Ubuntu"}],
                }
            },
        }
    }
}


class StubClient:
    """The two calls the check makes, returning fixed data. Records the filters of each listing."""

    endpoint = "http://stub.invalid"

    def __init__(self, catalog=CATALOG, private_images=(), catalog_error=None):
        self.catalog = catalog
        self.private_images = private_images
        self.catalog_error = catalog_error
        self.listings = []

    async def get_catalog(self):
        if self.catalog_error is not None:
            raise self.catalog_error
        return self.catalog

    async def list_instances(self, **filters):
        self.listings.append(filters)
        return [{"resourceUri": uri, "attributes": {"instanceStatus": "created"}} for uri in self.private_images]


def vm_spec(vm_lines: str, extra: str = "") -> str:
    return (
        "workload: w\n"
        "defaults: {provider: hpcloud, region: nova}\n"
        "resources:\n"
        "  kp1: {type: kp}\n"
        "  vm1:\n"
        "    type: vm\n"
        f"{vm_lines}"
        "    keyPairId: ${kp1.instanceId}\n"
        f"{extra}"
    )


def run_check(text: str, client: StubClient) -> None:
    spec = parse_spec(text, "w.yaml")
    anyio.run(check_catalog, spec, client)


def problems_of(text: str, client: StubClient | None = None) -> list[str]:
    with pytest.raises(NotInCatalog) as caught:
        run_check(text, client or StubClient())
    return [str(problem) for problem in caught.value.problems]


def test_known_values_pass_without_listing():
    client = StubClient()

    run_check(vm_spec("    resource: standard.small\n    imageUri: image/hpcloud/nova/ami-00000075\n"), client)

    assert client.listings == []


def test_unknown_resource_id_position():
    problems = problems_of(vm_spec("    resource: standard.huge\n    imageUri: image/hpcloud/nova/ami-00000075\n"))

    assert len(problems) == 1
    assert problems[0].startswith("w.yaml:7:15: resource id 'standard.huge' of vm1 is not in the endpoint's catalog")
    assert problems[0].endswith("(resource ids: standard.small)")


def test_default_provider_points_at_defaults():
    text = vm_spec("    resource: standard.small\n    imageUri: image/hpcloud/nova/ami-00000075\n").replace(
        "provider: hpcloud", "provider: hpclod"
    )

    problems = problems_of(text)

    assert [problem.split(": ", 1)[0] for problem in problems] == ["w.yaml:2:22", "w.yaml:2:22"]
    assert "provider 'hpclod' of kp1 is not in the endpoint's catalog; did you mean 'hpcloud'?" in problems[0]


def test_region_in_uri_points_at_uri():
    problems = problems_of(vm_spec("    resourceUri: vm/hpcloud/west/standard.small\n    imageUri: image/hpcloud/west/ami-1\n"))

    assert len(problems) == 1
    assert problems[0].startswith("w.yaml:7:18: region 'west' of vm1 is not in the endpoint's catalog for provider hpcloud")


def test_private_image_passes():
    private = "image/hpcloud/nova/ami-00058180"
    extra = f"  vm2:\n    type: vm\n    resource: standard.small\n    imageUri: {private}\n"
    client = StubClient(private_images=[private])

    run_check(vm_spec(f"    resource: standard.small\n    imageUri: {private}\n", extra), client)

    assert client.listings == [{"resource_type": "image", "provider": "hpcloud", "region": "nova"}]


def test_unknown_image_is_reported():
    problems = problems_of(vm_spec("    resource: standard.small\n    imageUri: image/hpcloud/nova/ami-00000076\n"))

    assert len(problems) == 1
    assert problems[0].startswith(
        "w.yaml:8:15: imageUri 'image/hpcloud/nova/ami-00000076' of vm1 is neither in the endpoint's catalog "
        "nor a private image of this account"
    )


def test_image_of_another_region_is_reported():
    problems = problems_of(vm_spec("    resource: standard.small\n    imageUri: image/amazon/us-east-1/ami-2d8e4c14\n"))

    assert len(problems) == 1
    assert "is not an image of hpcloud/nova, where the VM is created" in problems[0]


def test_referenced_image_is_left_to_the_run():
    extra = "  vm2:\n    type: vm\n    resource: standard.small\n    imageUri: ${img.resourceUri}\n"
    extra += "  img:\n    type: image\n    from: ${vm1.instanceId}\n"
    client = StubClient()

    run_check(vm_spec("    resource: standard.small\n    imageUri: image/hpcloud/nova/ami-00000075\n", extra), client)

    assert client.listings == []


def test_endpoint_without_catalog_is_not_checked():
    run_check(vm_spec("    resource: standard.huge\n    imageUri: nowhere\n"), StubClient(catalog=None))


def test_unreadable_catalog_is_skipped():
    error = TransportError("connection reset", method="GET", url="/api/catalog", maybe_acted=False)

    run_check(vm_spec("    resource: standard.huge\n    imageUri: nowhere\n"), StubClient(catalog_error=error))
