-- Teacher pipeline (DOMAIN.md measure 7).

CREATE VIEW IF NOT EXISTS outcome_teacher_pipeline
COMMENT 'Credentials issued by year and type; how many holders earned a bachelor''s at CSU or UC before the credential'
AS
WITH
    bachelors AS (
        SELECT person_key, min(completion_date) AS first_bachelor
        FROM completion_current
        WHERE award_level = 'BACHELOR' AND provider IN ('csu', 'uc')
        GROUP BY person_key
    )
SELECT toYear(c.issue_date) AS issue_year,
       c.credential_type AS credential_type,
       count() AS credentials,
       countIf(b.person_key != '' AND b.first_bachelor < c.issue_date) AS with_ca_public_bachelor
FROM credential_current AS c
LEFT JOIN bachelors AS b ON c.person_key = b.person_key
GROUP BY issue_year, credential_type;
