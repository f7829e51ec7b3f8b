-- Opt-out removals by patch parts: with block numbers and offsets on every table that holds
-- person rows, `DELETE ... SETTINGS lightweight_delete_mode = 'lightweight_update'` writes a
-- small patch part that every reader applies at once, instead of a mutation rewriting the
-- row mask of every part and waiting for the background pool (about 30 ms a table instead
-- of 0.1 to 1.3 s here). Parts written before this migration are covered too.

ALTER TABLE fact_enrollment MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;
ALTER TABLE fact_completion MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;
ALTER TABLE fact_financial_aid MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;
ALTER TABLE fact_wage MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;
ALTER TABLE fact_credential MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;
ALTER TABLE dim_person MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;
ALTER TABLE person_map MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;
