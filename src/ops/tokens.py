"""The operator tokens a KV store backup holds, read from the BoltDB file without opening it.

A full restore replaces InfluxDB's KV store, and with it every token: afterwards only the
backed-up instance's tokens are valid. ``influx restore`` learns the new operator token from the
restore answer, but InfluxDB 2.8 and newer store tokens hashed (``--use-hashed-tokens``, on by
default) and then answer an empty token. So the restore decides before it writes anything which
token will work afterwards: the one it was given, when it is one of the backup's operator tokens
(the usual case: the chart keeps the admin Secret), or the backed-up instance's operator token
supplied separately; otherwise it refuses and leaves the target as it was.

Authorizations are JSON values in the BoltDB file (``authorizationsv1``); BoltDB keeps each value
whole on its pages, so they are found by scanning the file for JSON objects.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass

RECORD = re.compile(rb'\{"id":"[0-9a-f]{16}",')
HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


@dataclass(frozen=True)
class Authorization:
    id: str
    token: str  # plain text (InfluxDB before 2.8, or hashing turned off), else ""
    hashed: str  # "$influxdb2-sha256$<base64url of the SHA-256>", or ""
    operator: bool
    active: bool
    description: str

    def matches(self, token: str) -> bool:
        if self.token:
            return self.token == token
        found = re.fullmatch(r"\$influxdb2-(sha256|sha512)\$(.+)", self.hashed)
        if not found:
            return False
        digest = HASHES[found.group(1)](token.encode()).digest()
        padded = found.group(2) + "=" * (-len(found.group(2)) % 4)
        try:
            return base64.urlsafe_b64decode(padded) == digest
        except ValueError:
            return False


def is_operator(permissions: object) -> bool:
    """Instance-wide permissions (no organization, no single resource), writing organizations
    and users among them: what InfluxDB's OperPermissions() grants."""
    if not isinstance(permissions, list) or not permissions:
        return False
    granted = set()
    for p in permissions:
        resource = p.get("resource") if isinstance(p, dict) else None
        if not isinstance(resource, dict) or resource.get("orgID") or resource.get("id"):
            return False
        granted.add((p.get("action"), resource.get("type")))
    return {("write", "orgs"), ("write", "users"), ("read", "authorizations")} <= granted


def authorizations(kv: bytes) -> list[Authorization]:
    found: dict[str, Authorization] = {}
    decoder = json.JSONDecoder()
    for match in RECORD.finditer(kv):
        end = kv.find(b"}]", match.start())
        window = kv[match.start() : end + 4096 if end >= 0 else match.start() + 65536]
        try:
            obj, _ = decoder.raw_decode(window.decode("utf-8", "replace"))
        except ValueError:
            continue
        if not isinstance(obj, dict) or "permissions" not in obj:
            continue
        if "token" not in obj and "hashedToken" not in obj:
            continue
        found[str(obj["id"])] = Authorization(
            id=str(obj["id"]),
            token=str(obj.get("token") or ""),
            hashed=str(obj.get("hashedToken") or ""),
            operator=is_operator(obj.get("permissions")),
            active=obj.get("status", "active") == "active",
            description=str(obj.get("description") or ""),
        )
    return list(found.values())


def operators(kv: bytes) -> list[Authorization]:
    return [a for a in authorizations(kv) if a.operator and a.active]
