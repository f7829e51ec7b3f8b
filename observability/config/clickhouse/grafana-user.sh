#!/bin/sh
# compose.yaml: run once by the ClickHouse image at its first start. Grafana's user reads as
# the public_reader role (sinks/access.py): the suppressed public_* views only. The role's
# grants are made by `c2c sink migrate` (the init job); creating the role here first lets
# the user be made before it.
set -e
clickhouse client --user "$CLICKHOUSE_USER" --password "$CLICKHOUSE_PASSWORD" --multiquery <<SQL
CREATE ROLE IF NOT EXISTS public_reader;
CREATE USER IF NOT EXISTS grafana IDENTIFIED WITH sha256_password BY '${C2C_GRAFANA_CLICKHOUSE_PASSWORD}' DEFAULT ROLE public_reader;
GRANT public_reader TO grafana;
SQL
