"""The secured local broker's principals: their passwords, their SCRAM users and their ACLs.

Each role of c2c/acls.py has a SCRAM-SHA-512 user ``c2c-<role>`` with a random password, kept in
``<data_dir>/kafka/principals.json`` (readable by its owner only: whoever runs the stack holds
every role's password, as an operator holding the cluster's admin credentials would).
:func:`as_role` gives the settings a process of that role connects with;
:func:`apply_acls` creates the users and ACLs (idempotent: ``c2c services up`` calls it at
every start). A remote cluster is secured by its operators, not here.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)
from pydantic import SecretStr

from c2c.acls import ADMIN, Grant, acl_table, roles, username
from c2c.errors import ServiceError
from c2c.settings import Settings
from services.base import is_loopback

__all__ = [
    "SCRAM_MECHANISM",
    "apply_acls",
    "as_role",
    "credentials_file",
    "local_secured",
    "role_passwords",
]

SCRAM_MECHANISM = "SCRAM-SHA-512"
_ITERATIONS = 8192


def credentials_file(settings: Settings) -> Path:
    """Where the local principals' passwords are kept."""
    return settings.data_dir.resolve() / "kafka" / "principals.json"


def role_passwords(settings: Settings, wanted: Iterable[str] = (ADMIN,)) -> dict[str, str]:
    """Every role's password, making one for each ``wanted`` role that has none yet (the
    file is written readable by its owner only)."""
    path = credentials_file(settings)
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [role for role in wanted if role not in known]
    if missing:
        known.update({role: secrets.token_urlsafe(24) for role in missing})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(known, out, indent=2, sort_keys=True)
    return known


def local_secured(settings: Settings) -> bool:
    """Whether the broker is the local one this project secures (C2C_KAFKA_ACLS)."""
    host = settings.kafka_bootstrap.split(",")[0].strip().rpartition(":")[0]
    return settings.kafka_secured and is_loopback(host)


def as_role(settings: Settings, role: str) -> Settings:
    """``settings`` connecting to the secured local broker as ``role``'s principal.
    ServiceError if the stack has no password for that role (`c2c services up` makes them)."""
    passwords = role_passwords(settings, ())
    if role not in passwords:
        raise ServiceError(
            f"no Kafka password for role {role!r} in {credentials_file(settings)}; "
            "run `c2c services up` with C2C_KAFKA_ACLS=true to create the principals",
            code="service.kafka.principal",
        )
    return settings.model_copy(
        update={
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_mechanism": SCRAM_MECHANISM,
            "kafka_sasl_username": username(role),
            "kafka_sasl_password": SecretStr(passwords[role]),
        }
    )


def _binding(grant: Grant) -> AclBinding:
    return AclBinding(
        ResourceType[grant.resource.upper()],
        grant.name,
        ResourcePatternType[grant.pattern.upper()],
        grant.principal,
        "*",
        AclOperation[grant.operation],
        AclPermissionType.ALLOW,
    )


def apply_acls(
    settings: Settings, providers: Mapping[str, Iterable[str]], *, timeout_s: float = 30.0
) -> int:
    """Create the SCRAM user of every role and the ACLs of c2c/acls.py on the local broker,
    as the admin; return the number of ACLs. Idempotent. ServiceError if the broker refuses."""
    all_roles = roles(providers)
    passwords = role_passwords(settings, all_roles)
    admin = AdminClient(as_role(settings, ADMIN).kafka_config())
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(
            username(role),
            ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, _ITERATIONS),
            passwords[role].encode(),
        )
        for role in all_roles
        if role != ADMIN  # made when the storage was formatted
    ]
    bindings = [_binding(grant) for grant in acl_table(providers)]
    try:
        for future in admin.alter_user_scram_credentials(upserts).values():
            future.result(timeout=timeout_s)
        for future in admin.create_acls(bindings).values():
            future.result(timeout=timeout_s)
    except KafkaException as exc:
        raise ServiceError(
            f"creating the Kafka principals and ACLs at {settings.kafka_bootstrap} failed: "
            f"{exc.args[0]}; see {settings.log_dir.resolve() / 'kafka.log'}",
            code="service.kafka.acls",
        ) from exc
    return len(bindings)
