"""What the C2C Stream services share: settings, the topic catalogue, Avro serde, clients for
Kafka and ClickHouse, and the `c2c` command."""

from c2c.errors import C2CError, ConfigError, ServiceError
from c2c.settings import Settings, load_settings

__all__ = ["C2CError", "ConfigError", "ServiceError", "Settings", "load_settings"]
__version__ = "0.1.0"
