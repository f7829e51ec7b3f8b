"""Fetching the local services' jars from Maven Central with the committed pom.

``services/pom.xml`` declares Kafka (and its logging backend) and Apicurio Registry's
distribution; Maven downloads them into ~/.m2 and copies or unpacks them into
``<data_dir>/lib``. A stamp file records the pom's hash, so a second fetch with the same pom
runs nothing at all.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from c2c.errors import ServiceError
from c2c.settings import Settings
from services._process import tail

__all__ = ["SERVICES_DIR", "artifacts_ready", "fetch_artifacts"]

SERVICES_DIR = Path(__file__).resolve().parent
_POM = SERVICES_DIR / "pom.xml"


def _pom_digest() -> str:
    return hashlib.sha256(_POM.read_bytes()).hexdigest()


def _stamp(settings: Settings) -> Path:
    return settings.lib_path / "stamp"


def artifacts_ready(settings: Settings) -> bool:
    """Whether ``<data_dir>/lib`` holds what the current pom declares."""
    stamp = _stamp(settings)
    return stamp.is_file() and stamp.read_text().strip() == _pom_digest()


def fetch_artifacts(settings: Settings, *, force: bool = False) -> bool:
    """Download and lay out the jars unless already there. Returns True if Maven ran.

    Raises ServiceError naming Maven's log when Maven is missing or fails.
    """
    if not force and artifacts_ready(settings):
        return False
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError(
            "Maven (mvn) is not on PATH; it fetches Kafka and Apicurio from Maven Central. "
            "Install it (Debian: apt-get install maven) and run again.",
            code="service.fetch.no_maven",
        )
    lib = settings.lib_path.resolve()
    for sub in ("kafka", "apicurio", "markers"):
        shutil.rmtree(lib / sub, ignore_errors=True)
    lib.mkdir(parents=True, exist_ok=True)
    log = settings.log_dir / "fetch.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        result = subprocess.run(
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(_POM),
                f"-Dc2c.lib={lib}",
                "dependency:copy-dependencies@kafka",
                "dependency:unpack@apicurio",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0:
        raise ServiceError(
            f"Maven could not fetch the service jars declared in {_POM} "
            f"(exit {result.returncode}); see {log}:\n{tail(log)}",
            code="service.fetch.failed",
        )
    _stamp(settings).write_text(_pom_digest() + "\n")
    return True
