"""The role -> ACL table (c2c/acls.py) read as data: who may read and write each topic."""

from __future__ import annotations

from c2c.acls import ADMIN, Grant, acl_table, principal, producer_role, roles
from c2c.kinds import EVENT_KINDS, LINKED_KINDS, get_kind
from c2c.topics import (
    CATALOGUE,
    CHANGES_TOPIC,
    DEAD_LETTER_TOPIC,
    INTAKE_TOPIC,
    OPTOUT_DECISIONS_TOPIC,
    REVIEW_TOPIC,
)
from producers.formats import provider_kinds

TABLE = acl_table(provider_kinds())
DEIDENTIFIED = {k.linked_topic for k in LINKED_KINDS} | {CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC}


def _may(role: str, operation: str, topic: str, table: tuple[Grant, ...] = TABLE) -> bool:
    """Whether ``role`` may ``operation`` ``topic``, as the broker matches ACLs."""
    return any(
        grant.role == role
        and grant.resource == "topic"
        and grant.operation == operation
        and (
            grant.name in (topic, "*")
            if grant.pattern == "literal"
            else topic.startswith(grant.name)
        )
        for grant in table
    )


def _readers(topic: str) -> set[str]:
    return {role for role in roles(provider_kinds()) if _may(role, "READ", topic)}


def test_every_role_has_its_own_principal() -> None:
    every = roles(provider_kinds())
    assert len({principal(role) for role in every}) == len(every)
    assert principal("sink") == "User:c2c-sink"
    assert ADMIN in every
    assert not [grant for grant in TABLE if grant.role == ADMIN]  # the super user needs none


def test_only_the_resolver_and_the_operator_read_the_identity_zone() -> None:
    identity = [topic.name for topic in CATALOGUE if topic.zone == "identity"]
    assert INTAKE_TOPIC in identity
    assert DEAD_LETTER_TOPIC in identity
    for name in identity:
        assert _readers(name) <= {"resolver", "operator"}, name
    for kind in EVENT_KINDS:
        assert _readers(kind.raw_topic) == {"resolver"}
    assert _readers(DEAD_LETTER_TOPIC) == {"operator"}
    assert _readers(REVIEW_TOPIC) == {"operator"}


def test_a_producer_writes_only_its_own_kinds_raw_topics() -> None:
    for provider, kinds in provider_kinds().items():
        role = producer_role(provider)
        written = {t.name for t in CATALOGUE if _may(role, "WRITE", t.name)}
        assert written == {get_kind(k).raw_topic for k in kinds} | {DEAD_LETTER_TOPIC}
        assert not [t.name for t in CATALOGUE if _may(role, "READ", t.name)]
    # edd sends wages only: it may not write another provider's credentials
    assert not _may(producer_role("edd"), "WRITE", get_kind("credential").raw_topic)


def test_the_sink_and_reader_read_the_deidentified_zone_only() -> None:
    for role in ("sink", "reader"):
        read = {t.name for t in CATALOGUE if _may(role, "READ", t.name)}
        assert read >= DEIDENTIFIED
        assert read - DEIDENTIFIED <= {"c2c.ops.heartbeat"}
    assert not [t.name for t in CATALOGUE if _may("reader", "WRITE", t.name)]


def test_the_resolver_writes_what_it_publishes_and_creates_only_its_own_topics() -> None:
    for name in (*DEIDENTIFIED, REVIEW_TOPIC, DEAD_LETTER_TOPIC, INTAKE_TOPIC):
        assert _may("resolver", "WRITE", name), name
    for kind in EVENT_KINDS:
        assert not _may("resolver", "WRITE", kind.raw_topic)
    created = {g.name for g in TABLE if g.role == "resolver" and g.operation == "CREATE"}
    assert created == {INTAKE_TOPIC, "c2c-identity"}  # its test intakes and Faust changelogs
    assert _may("resolver", "WRITE", "c2c-identity-identity-sources-changelog")


def test_a_new_provider_gets_a_producer_of_its_kinds_and_nothing_else() -> None:
    table = acl_table({"ece": ["enrollment"]})
    assert _may("producer-ece", "WRITE", "c2c.raw.enrollment", table)
    assert not _may("producer-ece", "WRITE", "c2c.raw.wage", table)
