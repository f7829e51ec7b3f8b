-- A minmax index of each fact table's publication time, by which the sink's look-up of a
-- batch's event ids (sinks/dedupe.py) reads only the parts holding copies published within
-- C2C_SINK_DEDUPE_WINDOW_S before the batch: the tables are ordered by event id, so the
-- ids of a batch fall in every granule, and without it the look-up read the whole table
-- (bench/RESULTS.md, 2026-12-07). A part holds the inserts merged into it, so its times
-- span theirs (a granule's span its part's): the parts of earlier inserts are skipped.
-- MATERIALIZE builds it for the parts written before this migration (a mutation, in the
-- background): until it has, those parts are read as before.

ALTER TABLE fact_enrollment ADD INDEX IF NOT EXISTS published_at_minmax published_at TYPE minmax GRANULARITY 1;
ALTER TABLE fact_completion ADD INDEX IF NOT EXISTS published_at_minmax published_at TYPE minmax GRANULARITY 1;
ALTER TABLE fact_financial_aid ADD INDEX IF NOT EXISTS published_at_minmax published_at TYPE minmax GRANULARITY 1;
ALTER TABLE fact_wage ADD INDEX IF NOT EXISTS published_at_minmax published_at TYPE minmax GRANULARITY 1;
ALTER TABLE fact_credential ADD INDEX IF NOT EXISTS published_at_minmax published_at TYPE minmax GRANULARITY 1;
ALTER TABLE fact_enrollment MATERIALIZE INDEX published_at_minmax;
ALTER TABLE fact_completion MATERIALIZE INDEX published_at_minmax;
ALTER TABLE fact_financial_aid MATERIALIZE INDEX published_at_minmax;
ALTER TABLE fact_wage MATERIALIZE INDEX published_at_minmax;
ALTER TABLE fact_credential MATERIALIZE INDEX published_at_minmax;
