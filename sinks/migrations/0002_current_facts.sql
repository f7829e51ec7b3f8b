-- Facts under the person they count for now: the surviving id after every merge. Replayed
-- copies of an event are collapsed (FINAL). Outcome views read these.

CREATE VIEW IF NOT EXISTS enrollment_current
COMMENT 'fact_enrollment, one row per event, person_key = the current person id'
AS SELECT f.*, if(m.survivor_id = '', f.person_id, m.survivor_id) AS person_key
FROM fact_enrollment AS f FINAL
LEFT JOIN (SELECT person_id, survivor_id FROM person_map FINAL) AS m ON f.person_id = m.person_id;

CREATE VIEW IF NOT EXISTS completion_current
COMMENT 'fact_completion, one row per event, person_key = the current person id'
AS SELECT f.*, if(m.survivor_id = '', f.person_id, m.survivor_id) AS person_key
FROM fact_completion AS f FINAL
LEFT JOIN (SELECT person_id, survivor_id FROM person_map FINAL) AS m ON f.person_id = m.person_id;

CREATE VIEW IF NOT EXISTS financial_aid_current
COMMENT 'fact_financial_aid, one row per event, person_key = the current person id'
AS SELECT f.*, if(m.survivor_id = '', f.person_id, m.survivor_id) AS person_key
FROM fact_financial_aid AS f FINAL
LEFT JOIN (SELECT person_id, survivor_id FROM person_map FINAL) AS m ON f.person_id = m.person_id;

CREATE VIEW IF NOT EXISTS wage_current
COMMENT 'fact_wage, one row per event, person_key = the current person id'
AS SELECT f.*, if(m.survivor_id = '', f.person_id, m.survivor_id) AS person_key
FROM fact_wage AS f FINAL
LEFT JOIN (SELECT person_id, survivor_id FROM person_map FINAL) AS m ON f.person_id = m.person_id;

CREATE VIEW IF NOT EXISTS credential_current
COMMENT 'fact_credential, one row per event, person_key = the current person id'
AS SELECT f.*, if(m.survivor_id = '', f.person_id, m.survivor_id) AS person_key
FROM fact_credential AS f FINAL
LEFT JOIN (SELECT person_id, survivor_id FROM person_map FINAL) AS m ON f.person_id = m.person_id;
