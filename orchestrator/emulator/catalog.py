"""The catalog: accounts, providers, regions, resource ids and public images.

The shipped `catalog.yaml` beside this module is the default; `load_catalog`
reads another file of the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.emulator.errors import CatalogError

RESOURCE_TYPES = ("kp", "sg", "vs", "vm", "image")
"""Resource types, in the order a workload usually creates them."""

VM_FACTS = ("cpuCount", "cpuSpeed", "localStorage", "ram", "username")
"""Flavour facts that a vm.create copies into its parameters, in wire order."""

DEFAULT_CATALOG_PATH = Path(__file__).with_name("catalog.yaml")


@dataclass(frozen=True)
class Account:
    """An API key with its secret, the owner id its objects carry, and whether it may create."""

    api_key: str
    secret: str
    owner_id: str
    has_payment_information: bool


@dataclass(frozen=True)
class Flavour:
    """One resource id of a type in a region, with the provider's spelling of it."""

    resource_id: str
    provider_resource_id: str
    vm_facts: dict[str, str] = field(default_factory=dict)
    max_size_in_gbytes: int | None = None


@dataclass(frozen=True)
class Region:
    """A provider's region: its connector, zone, flavours per type and public images."""

    provider: str
    name: str
    connector: str
    zone: str
    flavours: dict[str, dict[str, Flavour]]
    images: dict[str, str]

    def flavour(self, resource_type: str, resource_id: str) -> Flavour | None:
        return self.flavours.get(resource_type, {}).get(resource_id)


@dataclass(frozen=True)
class Catalog:
    """Accounts by API key, connectors by provider, and regions by provider and region name."""

    accounts: dict[str, Account]
    connectors: dict[str, str]
    regions: dict[str, dict[str, Region]]
    source: str

    def region(self, provider: str, region: str) -> Region | None:
        return self.regions.get(provider, {}).get(region)

    def to_public_dict(self) -> dict[str, Any]:
        """Build the body of `GET /api/catalog`: resource ids per type and image URIs, per region."""
        providers: dict[str, Any] = {}
        for provider, regions in self.regions.items():
            public_regions: dict[str, Any] = {}
            for name, region in regions.items():
                public_regions[name] = {
                    "zone": region.zone,
                    "resources": {
                        resource_type: list(region.flavours.get(resource_type, {}))
                        for resource_type in RESOURCE_TYPES
                        if region.flavours.get(resource_type)
                    },
                    "images": [
                        {"imageUri": f"image/{provider}/{name}/{image_id}", "name": image_name}
                        for image_id, image_name in sorted(region.images.items())
                    ],
                }
            providers[provider] = {"connector": self.connectors[provider], "regions": public_regions}
        return {"providers": providers}


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load and check a catalog file, the shipped one when `path` is None.

    Raises `CatalogError` naming the file and the entry when the file is
    missing, is not YAML, or has an entry of the wrong shape.
    """
    catalog_path = Path(path) if path is not None else DEFAULT_CATALOG_PATH
    try:
        document = yaml.safe_load(catalog_path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CatalogError(f"cannot read catalog {catalog_path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise CatalogError(f"catalog {catalog_path} is not valid YAML: {error}") from error

    reader = _CatalogReader(str(catalog_path))
    return reader.read(document)


class _CatalogReader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> CatalogError:
        return CatalogError(f"catalog {self.source}: {where}: {problem}")

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict) or not value:
            raise self.fail(where, "expected a non-empty mapping")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(where, f"expected a non-empty string, got {value!r}")
        return value

    def read(self, document: Any) -> Catalog:
        root = self.mapping(document, "top level")
        unknown = set(root) - {"accounts", "providers"}
        if unknown:
            raise self.fail("top level", f"unknown keys {sorted(unknown)}; expected accounts and providers")

        accounts = self.read_accounts(root.get("accounts"))
        connectors: dict[str, str] = {}
        regions: dict[str, dict[str, Region]] = {}
        for provider, entry in self.mapping(root.get("providers"), "providers").items():
            provider = self.text(provider, "providers")
            where = f"providers.{provider}"
            entry = self.mapping(entry, where)
            connectors[provider] = self.text(entry.get("connector"), f"{where}.connector")
            regions[provider] = {
                self.text(name, f"{where}.regions"): self.read_region(provider, connectors[provider], name, region)
                for name, region in self.mapping(entry.get("regions"), f"{where}.regions").items()
            }
        return Catalog(accounts=accounts, connectors=connectors, regions=regions, source=self.source)

    def read_accounts(self, entries: Any) -> dict[str, Account]:
        if not isinstance(entries, list) or not entries:
            raise self.fail("accounts", "expected a non-empty list")
        accounts: dict[str, Account] = {}
        for index, entry in enumerate(entries):
            where = f"accounts[{index}]"
            entry = self.mapping(entry, where)
            payment = entry.get("paymentInformation", True)
            if not isinstance(payment, bool):
                raise self.fail(where, f"paymentInformation must be true or false, got {payment!r}")
            account = Account(
                api_key=self.text(entry.get("apiKey"), f"{where}.apiKey"),
                secret=self.text(entry.get("secret"), f"{where}.secret"),
                owner_id=self.text(entry.get("ownerId"), f"{where}.ownerId"),
                has_payment_information=payment,
            )
            if account.api_key in accounts:
                raise self.fail(where, f"apiKey {account.api_key} appears twice")
            accounts[account.api_key] = account
        return accounts

    def read_region(self, provider: str, connector: str, name: str, entry: Any) -> Region:
        where = f"providers.{provider}.regions.{name}"
        entry = self.mapping(entry, where)
        resources = self.mapping(entry.get("resources"), f"{where}.resources")

        flavours: dict[str, dict[str, Flavour]] = {}
        for resource_type, ids in resources.items():
            if resource_type not in RESOURCE_TYPES:
                raise self.fail(f"{where}.resources", f"unknown resource type {resource_type!r}; expected one of {', '.join(RESOURCE_TYPES)}")
            flavours[resource_type] = {
                str(resource_id): self.read_flavour(resource_type, str(resource_id), spec, f"{where}.resources.{resource_type}.{resource_id}")
                for resource_id, spec in self.mapping(ids, f"{where}.resources.{resource_type}").items()
            }

        images = {
            self.text(image_id, f"{where}.images"): self.text(self.mapping(spec, f"{where}.images.{image_id}").get("name"), f"{where}.images.{image_id}.name")
            for image_id, spec in (entry.get("images") or {}).items()
        }
        if "vm" in flavours and not images:
            raise self.fail(where, "a region with VM flavours needs at least one image")

        return Region(
            provider=provider,
            name=name,
            connector=connector,
            zone=self.text(entry.get("zone", name), f"{where}.zone"),
            flavours=flavours,
            images=images,
        )

    def read_flavour(self, resource_type: str, resource_id: str, spec: Any, where: str) -> Flavour:
        spec = self.mapping(spec, where)
        provider_resource_id = self.text(spec.get("providerResourceId"), f"{where}.providerResourceId")

        vm_facts: dict[str, str] = {}
        if resource_type == "vm":
            for fact in VM_FACTS:
                vm_facts[fact] = self.text(spec.get(fact), f"{where}.{fact}")

        max_size: int | None = None
        if resource_type == "vs":
            max_size = spec.get("sizeInGBytes")
            if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < 1:
                raise self.fail(f"{where}.sizeInGBytes", f"expected a positive integer, got {max_size!r}")

        return Flavour(
            resource_id=resource_id,
            provider_resource_id=provider_resource_id,
            vm_facts=vm_facts,
            max_size_in_gbytes=max_size,
        )
