"""Running and watching the services the pipeline needs: Kafka, the schema registry and
ClickHouse. Local ones (loopback endpoints, embedded chdb) are run by this project; remote
ones are only probed."""

from c2c.services.base import ServiceStatus
from c2c.services.fetch import artifacts_ready, fetch_artifacts
from c2c.services.manager import SERVICE_NAMES, services_down, services_status, services_up

__all__ = [
    "SERVICE_NAMES",
    "ServiceStatus",
    "artifacts_ready",
    "fetch_artifacts",
    "services_down",
    "services_status",
    "services_up",
]
