"""Who may do what on the broker: one principal per role, and the ACLs each gets, as data.

:func:`acl_table` renders the grants from the topic catalogue (c2c.topics) and the kinds each
provider sends; ``c2c services up`` creates the SCRAM users and these ACLs on a secured local
broker (services/kafka.py), and tests/unit/test_acls.py reads the table as data. Nothing here
talks to Kafka.

- ``producer-<provider>`` writes the raw topics of the kinds that provider sends, and dead
  letters (its rejected rows); reads nothing.
- ``resolver`` reads the raw topics, operators' decisions on reviews, the intake and its
  changelogs; writes the intake, the linked topics, changes, opt-out decisions, review, dead
  letters and its changelogs.
- ``sink`` reads the linked topics, changes, opt-out decisions and heartbeats; writes dead
  letters (messages it cannot decode).
- ``reader`` (de-identified microdata) reads the linked topics, changes, opt-out decisions.
- ``operator`` reads dead letters and review; describes every topic and group (`c2c status`);
  reads and writes the operators' audit; writes raw topics and dead letters (`c2c
  deadletters replay|skip`) and operators' decisions (`c2c review link|separate`).
- ``registry`` reads and writes its journal (``kafkasql-*``) and ``registry-events``.
- ``admin`` is the broker's super user (the broker itself, `c2c services up`, `c2c topics`).

Nobody but the resolver and the operator reads the identity zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from c2c.kinds import EVENT_KINDS, LINKED_KINDS
from c2c.topics import (
    AUDIT_TOPIC,
    CHANGES_TOPIC,
    DEAD_LETTER_TOPIC,
    INTAKE_TOPIC,
    OPERATOR_DECISIONS_TOPIC,
    OPTOUT_DECISIONS_TOPIC,
    REGISTRY_JOURNAL,
    REVIEW_TOPIC,
)

__all__ = [
    "ADMIN",
    "FIXED_ROLES",
    "Grant",
    "acl_table",
    "principal",
    "producer_role",
    "roles",
    "username",
]

ResourceKind = Literal["topic", "group", "cluster"]
Pattern = Literal["literal", "prefixed"]
Operation = Literal["READ", "WRITE", "DESCRIBE", "CREATE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"]

ADMIN = "admin"
# Roles besides one producer per provider; the admin is a super user and needs no ACL.
FIXED_ROLES = ("resolver", "sink", "reader", "operator", "registry", ADMIN)
_HEARTBEAT_TOPIC = "c2c.ops.heartbeat"
# Apicurio's events topic (apicurio.events.kafka.topic), which it creates at start.
_REGISTRY_EVENTS = "registry-events"
# Consumer groups and Faust topics of the identity worker are named after its app id
# (streams.app.APP_ID, "c2c-identity", and tests' "c2c-identity-<hex>").
_WORKER_PREFIX = "c2c-identity"


@dataclass(frozen=True)
class Grant:
    """One ACL: ``role``'s principal may do ``operation`` on the resource ``name`` (a whole
    name, or every name starting with it when ``pattern`` is prefixed)."""

    role: str
    resource: ResourceKind
    name: str
    operation: Operation
    pattern: Pattern = "literal"

    @property
    def principal(self) -> str:
        return principal(self.role)


def username(role: str) -> str:
    """The SCRAM user of ``role`` on the secured broker."""
    return f"c2c-{role}"


def principal(role: str) -> str:
    """The Kafka principal of ``role``: ``User:`` and its SCRAM user."""
    return f"User:{username(role)}"


def producer_role(provider: str) -> str:
    """The role of the producer of ``provider``'s extracts."""
    return f"producer-{provider}"


def roles(providers: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    """Every role: a producer per provider (``providers``: provider -> kinds it sends), then
    the fixed ones."""
    return (*(producer_role(p) for p in sorted(providers)), *FIXED_ROLES)


def _topic(role: str, names: Iterable[str], *ops: Operation) -> list[Grant]:
    return [Grant(role, "topic", name, op) for name in names for op in ops]


def _prefix(role: str, resource: ResourceKind, name: str, *ops: Operation) -> list[Grant]:
    return [Grant(role, resource, name, op, "prefixed") for op in ops]


def acl_table(providers: Mapping[str, Iterable[str]]) -> tuple[Grant, ...]:
    """Every ACL of every role but the admin (a super user), for ``providers`` (provider ->
    names of the kinds it sends, producers.formats.FORMATS). KeyError names an unknown kind."""
    kinds = {kind.name: kind for kind in EVENT_KINDS}
    raw = [kind.raw_topic for kind in EVENT_KINDS]
    linked = [kind.linked_topic for kind in LINKED_KINDS]
    deidentified = [*linked, CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC]
    grants: list[Grant] = []
    for provider, sent in sorted(providers.items()):
        topics = sorted({kinds[name].raw_topic for name in sent})
        grants += _topic(producer_role(provider), topics, "WRITE", "DESCRIBE")
        # its rejected rows (write only: the dead letters of others are not its to read)
        grants += _topic(producer_role(provider), [DEAD_LETTER_TOPIC], "WRITE", "DESCRIBE")
    resolver = "resolver"
    # the raw topics, and operators' decisions on reviews (`c2c review link|separate`),
    # which the forwarder forwards to the intake with them
    grants += _topic(resolver, [*raw, OPERATOR_DECISIONS_TOPIC], "READ", "DESCRIBE")
    grants += _topic(
        resolver, [*deidentified, REVIEW_TOPIC, DEAD_LETTER_TOPIC], "WRITE", "DESCRIBE"
    )
    # the intake (and tests' own intakes, c2c.identity.intake.<app id>) and Faust's
    # changelogs (<app id>-<table>-changelog), which Faust declares itself
    for name in (INTAKE_TOPIC, _WORKER_PREFIX):
        grants += _prefix(
            resolver, "topic", name, "READ", "WRITE", "DESCRIBE", "CREATE", "DESCRIBE_CONFIGS"
        )
    grants += _prefix(resolver, "group", _WORKER_PREFIX, "READ", "DESCRIBE")
    for reader in ("sink", "reader"):
        grants += _topic(reader, deidentified, "READ", "DESCRIBE")
        grants += _prefix(reader, "group", f"c2c-{reader}", "READ", "DESCRIBE")
    grants += _topic("sink", [_HEARTBEAT_TOPIC], "READ", "DESCRIBE")
    grants += _topic("sink", [DEAD_LETTER_TOPIC], "WRITE", "DESCRIBE")  # what it cannot decode
    operator = "operator"
    grants += _topic(operator, [DEAD_LETTER_TOPIC, REVIEW_TOPIC], "READ")
    # c2c deadletters and review: every decision audited; a replay sends the original
    # bytes back to a raw topic; a skip dead-letters the message it moves past
    grants += _topic(operator, [AUDIT_TOPIC], "READ", "WRITE")
    grants += _topic(operator, [*raw, DEAD_LETTER_TOPIC, OPERATOR_DECISIONS_TOPIC], "WRITE")
    grants += _topic(operator, ["*"], "DESCRIBE", "DESCRIBE_CONFIGS")  # "*": every topic
    grants += [Grant(operator, "group", "*", "DESCRIBE")]
    grants += _prefix(operator, "group", "c2c-operator", "READ")
    journal = REGISTRY_JOURNAL.name.split("-")[0] + "-"  # kafkasql-journal, -snapshots
    grants += _prefix(
        "registry", "topic", journal, "READ", "WRITE", "DESCRIBE", "CREATE", "DESCRIBE_CONFIGS"
    )
    grants += _topic(
        "registry", [_REGISTRY_EVENTS], "READ", "WRITE", "DESCRIBE", "CREATE", "DESCRIBE_CONFIGS"
    )
    grants += _prefix("registry", "group", "c2c-registry", "READ", "DESCRIBE")
    return tuple(grants)
