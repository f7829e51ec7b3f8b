"""Running and watching the services the pipeline needs: Kafka, the schema registry and
ClickHouse. Local ones (loopback endpoints, embedded chdb) are run by this project; remote
ones are only probed."""

from services.base import ServiceStatus
from services.fetch import artifacts_ready, fetch_artifacts
from services.manager import SERVICE_NAMES, services_down, services_status, services_up

__all__ = [
    "SERVICE_NAMES",
    "ServiceStatus",
    "artifacts_ready",
    "fetch_artifacts",
    "services_down",
    "services_status",
    "services_up",
]
