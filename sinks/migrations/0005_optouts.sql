-- Opt-outs: who is out (so that rows published before the opt-out and read late, or replayed,
-- are never written again), and the audit of every decision. No PII: ids and counts only.

CREATE TABLE IF NOT EXISTS optout_person
(
    person_id String COMMENT 'A pseudonymous person id covered by an opt-out',
    opted_out_at DateTime64(3, 'UTC') COMMENT 'When the identity resolver applied the latest opt-out covering it; rows published up to then are removed and never written again'
)
ENGINE = ReplacingMergeTree(opted_out_at)
ORDER BY person_id
COMMENT 'Person ids removed by an opt-out (kept after a revocation: only events published after it are re-admitted)';

CREATE TABLE IF NOT EXISTS optout_audit
(
    decision_id String COMMENT 'The identity resolver''s decision (one per request, revocation or spreading merge)',
    request_id String COMMENT 'The opt-out request it applies or revokes',
    cause LowCardinality(String) COMMENT 'REQUESTED, REVOKED or MERGED (a merge joined an opted-out person with another)',
    requested_by LowCardinality(String) COMMENT 'INDIVIDUAL, PROVIDER or OPERATOR',
    requested_at DateTime64(3, 'UTC') COMMENT 'When it was asked, at its source',
    decided_at DateTime64(3, 'UTC') COMMENT 'When the identity resolver applied it (from then on no linked event of the person is published; after a revocation, they are again)',
    applied_at DateTime64(3, 'UTC') COMMENT 'When the sink removed the rows',
    opted_out Bool COMMENT 'Whether the person is out after this decision',
    persons UInt32 COMMENT 'How many person ids (the person and ids merged into it) the decision covers',
    rows_removed Map(LowCardinality(String), UInt64) COMMENT 'Rows removed per table'
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY (request_id, decision_id)
COMMENT 'Audit of opt-outs: when asked, when applied, rows removed per table; no PII';
