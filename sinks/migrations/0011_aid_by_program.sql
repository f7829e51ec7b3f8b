-- Financial aid by program (DOMAIN.md: the share of enrolled students with a grant, by
-- program and segment): outcome_financial_aid gets breakdown and group_value. The 'all'
-- row is the view as before; a 'program' row has the same students (the segment's that
-- year) and counts those with an award of that program. A student with awards of several
-- programs counts in each, so the programs add up to at least with_aid (exactly, where no
-- one has two). Every program with an award in an aid year started by the csac horizon has
-- a row in every segment and year (0 where none).

CREATE OR REPLACE VIEW outcome_financial_aid
(
    segment String COMMENT 'ccc, csu or uc',
    academic_year UInt16 COMMENT 'Academic (and aid) year by the calendar year it ends in (2017 = 2016-17); only years started by the segment''s horizon',
    breakdown String COMMENT 'all, or program (the aid program of the award)',
    group_value String COMMENT 'all for all; the aid program (CAL_GRANT_A, CAL_GRANT_B, CAL_GRANT_C, MIDDLE_CLASS_SCHOLARSHIP, PELL, OTHER, as reported) for program',
    students UInt64 COMMENT 'Students enrolled at the segment that year (the same in every row of a segment and year)',
    with_aid Nullable(UInt64) COMMENT 'Of them, those with an aid award (of the row''s program) for that aid year at an institution of the segment they attended; NULL until the csac horizon reaches June 30 ending the aid year',
    coverage Float64 COMMENT 'Share of the students linked to a record of a source other than the segment'
)
COMMENT 'Students enrolled at a segment in academic year Y, and those with an aid award for aid year Y at an institution of that segment they attended that year; all, and by aid program (the same students; one with awards of several programs counts in each). NULL: the aid year is not complete in the aid data'
AS
WITH
    terms AS (
        SELECT DISTINCT e.person_key AS person_key, e.provider AS segment,
               e.academic_year AS start_year, e.institution_id AS institution_id,
               ifNull(makeDate(e.academic_year + 1, 6, 30) <= h.csac, false) AS closed
        FROM enrollment_current AS e
        CROSS JOIN horizon_wide AS h
        WHERE e.provider IN ('ccc', 'csu', 'uc')
          AND ifNull(makeDate(e.academic_year, 7, 1) <= multiIf(e.provider = 'ccc', h.ccc, e.provider = 'csu', h.csu, h.uc), false)
    ),
    aid AS (
        SELECT DISTINCT person_key, award_year, institution_id, toString(aid_program) AS program
        FROM financial_aid_current WHERE institution_id IS NOT NULL
    ),
    programs AS (
        SELECT arraySort(groupUniqArray(toString(a.aid_program))) AS names
        FROM financial_aid_current AS a
        CROSS JOIN horizon_wide AS h
        WHERE ifNull(makeDate(a.award_year, 7, 1) <= h.csac, false)
    )
SELECT terms.segment AS segment, terms.start_year + 1 AS academic_year,
       cell.1 AS breakdown,
       cell.2 AS group_value,
       uniqExact(terms.person_key) AS students,
       if(countIf(NOT terms.closed) > 0, NULL,
          uniqExactIf(terms.person_key,
                      aid.person_key != '' AND (cell.1 = 'all' OR aid.program = cell.2))) AS with_aid,
       round(uniqExactIf(terms.person_key,
                         length(arrayFilter(s -> s != terms.segment, ps.sources)) > 0)
             / uniqExact(terms.person_key), 3) AS coverage
FROM terms
CROSS JOIN programs
LEFT JOIN aid ON terms.person_key = aid.person_key
    AND terms.start_year = aid.award_year
    AND terms.institution_id = aid.institution_id
LEFT JOIN person_sources AS ps ON terms.person_key = ps.person_key
ARRAY JOIN arrayConcat([('all', 'all')], arrayMap(p -> ('program', p), programs.names)) AS cell
GROUP BY segment, academic_year, breakdown, group_value;
