"""The ground floor: what the C2C Stream packages share (settings, the topic catalogue, Avro
serde, clients for Kafka, the registry and ClickHouse, telemetry and errors). It imports none
of the packages above it (tests/unit/test_layers.py)."""

from c2c.errors import C2CError, ConfigError, ServiceError
from c2c.settings import Settings, load_settings

__all__ = ["C2CError", "ConfigError", "ServiceError", "Settings", "load_settings"]
__version__ = "0.1.0"
