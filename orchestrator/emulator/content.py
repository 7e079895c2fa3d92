"""Realistic content of new instances: RSA key pairs, VM passwords and addresses.

Addresses come only from the documentation ranges of RFC 5737
(192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24), so nothing the emulator
hands out can reach a real host.
"""

from __future__ import annotations

import base64
import hashlib
import random
import secrets
import string
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PRIVATE_ADDRESS_PREFIX = "192.0.2."
PUBLIC_ADDRESS_PREFIXES = ("198.51.100.", "203.0.113.")
_PASSWORD_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class KeyPair:
    """An RSA key pair in the wire forms of the instance API."""

    public_key: str
    private_key: str
    fingerprint: str


def generate_key_pair(key_bits: int) -> KeyPair:
    """Generate an RSA key pair: OpenSSH public key, PEM private key and MD5 fingerprint.

    The fingerprint is the colon-separated MD5 of the public key blob, the form
    `ssh-keygen -l -E md5` prints. Generation takes tens of milliseconds at
    2048 bits, so callers run it off the event loop.
    """
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=key_bits)
    openssh = private_key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode("ascii")
    blob = base64.b64decode(openssh.split(" ", 1)[1])
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")
    return KeyPair(
        # The provider appends an empty comment, hence the space before the newline.
        public_key=f"{openssh} \n",
        private_key=pem,
        fingerprint=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
    )


def generate_password(length: int = 16) -> str:
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))


def pick_addresses(rng: random.Random) -> tuple[str, str]:
    """Pick a private and a public address for a VM, from documentation ranges."""
    private = f"{PRIVATE_ADDRESS_PREFIX}{rng.randint(1, 254)}"
    public = f"{rng.choice(PUBLIC_ADDRESS_PREFIXES)}{rng.randint(1, 254)}"
    return private, public
