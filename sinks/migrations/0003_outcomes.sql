-- Outcome measures (../shared/DOMAIN.md), computed from the current facts. Definitions
-- match synth's truth (producers/synth/outcomes.py) word for word.

CREATE VIEW IF NOT EXISTS outcome_college_going
COMMENT 'Of high-school completers in class Y, those whose first public postsecondary term starts within 12 months (365 days) and within 16 months (487 days) of completion, by segment of that first term; breakdowns all, race, sex'
AS
WITH
    hs AS (
        SELECT person_key,
               min(completion_date) AS done,
               argMin(race_ethnicity, completion_date) AS race,
               argMin(sex, completion_date) AS sex
        FROM completion_current
        WHERE award_level IN ('HS_DIPLOMA', 'HS_CERTIFICATE', 'HS_EQUIVALENCY')
        GROUP BY person_key
    ),
    first_term AS (
        SELECT person_key,
               min(term_start_date) AS start,
               argMin(provider, term_start_date) AS segment
        FROM enrollment_current
        WHERE provider IN ('ccc', 'csu', 'uc') AND term_start_date IS NOT NULL
        GROUP BY person_key
    ),
    joined AS (
        SELECT toYear(hs.done) AS class_year, hs.race AS race, hs.sex AS sex,
               ft.person_key != '' AS enrolled, ft.segment AS segment,
               dateDiff('day', hs.done, ft.start) AS days
        FROM hs LEFT JOIN first_term AS ft ON hs.person_key = ft.person_key
    )
SELECT class_year,
       cell.1 AS breakdown,
       cell.2 AS group_value,
       count() AS completers,
       countIf(enrolled AND days <= 365) AS within_12,
       countIf(enrolled AND days <= 487) AS within_16,
       countIf(enrolled AND days <= 365 AND segment = 'ccc') AS within_12_ccc,
       countIf(enrolled AND days <= 365 AND segment = 'csu') AS within_12_csu,
       countIf(enrolled AND days <= 365 AND segment = 'uc') AS within_12_uc,
       countIf(enrolled AND days <= 487 AND segment = 'ccc') AS within_16_ccc,
       countIf(enrolled AND days <= 487 AND segment = 'csu') AS within_16_csu,
       countIf(enrolled AND days <= 487 AND segment = 'uc') AS within_16_uc
FROM joined
ARRAY JOIN [('all', 'all'), ('race', ifNull(race, 'NOT_REPORTED')), ('sex', ifNull(sex, 'NOT_REPORTED'))] AS cell
GROUP BY class_year, breakdown, group_value;

CREATE VIEW IF NOT EXISTS outcome_working_while_enrolled
COMMENT 'Students enrolled at a segment in academic year Y, and those with wages in a quarter in which one of their terms that year starts'
AS
WITH
    terms AS (
        SELECT DISTINCT person_key, provider AS segment, academic_year,
               toYear(term_start_date) AS y, toQuarter(term_start_date) AS q
        FROM enrollment_current
        WHERE provider IN ('ccc', 'csu', 'uc') AND term_start_date IS NOT NULL
    ),
    paid AS (SELECT DISTINCT person_key, year AS y, quarter AS q FROM wage_current)
SELECT segment, academic_year,
       uniqExact(terms.person_key) AS students,
       uniqExactIf(terms.person_key, paid.person_key != '') AS with_wages
FROM terms
LEFT JOIN paid ON terms.person_key = paid.person_key AND terms.y = paid.y AND terms.q = paid.q
GROUP BY segment, academic_year;

CREATE VIEW IF NOT EXISTS outcome_financial_aid
COMMENT 'Students enrolled at a segment in academic year Y, and those with an aid award for aid year Y at an institution of that segment they attended that year'
AS
WITH
    terms AS (
        SELECT DISTINCT person_key, provider AS segment, academic_year, institution_id
        FROM enrollment_current
        WHERE provider IN ('ccc', 'csu', 'uc')
    ),
    aid AS (
        SELECT DISTINCT person_key, award_year, institution_id
        FROM financial_aid_current WHERE institution_id IS NOT NULL
    )
SELECT segment, academic_year,
       uniqExact(terms.person_key) AS students,
       uniqExactIf(terms.person_key, aid.person_key != '') AS with_aid
FROM terms
LEFT JOIN aid ON terms.person_key = aid.person_key
    AND terms.academic_year = aid.award_year
    AND terms.institution_id = aid.institution_id
GROUP BY segment, academic_year;
