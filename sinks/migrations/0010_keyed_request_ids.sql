-- The opt-out audit holds request ids keyed with the identity secret (sinks.optouts.
-- request_ref): a request id may embed a person's number. Rows audited before this
-- migration keep the id as it came.

ALTER TABLE optout_audit COMMENT COLUMN request_id 'The opt-out request it applies or revokes, keyed: HMAC-SHA256 of its id under the identity secret (`c2c optout status ID` finds it by its id)';
