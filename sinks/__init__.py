"""ClickHouse sinks: de-identified fact tables and outcome tables."""
