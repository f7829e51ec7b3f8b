"""Finding a Java runtime of at least a given major version.

Kafka 4.x runs on Java 17; Apicurio Registry 3.1 and later are compiled for Java 21. The
machine's default `java` may be older than a service needs, so candidates are, in order: the
service's own setting, JAVA_HOME, `java` on PATH, then every JDK under /usr/lib/jvm.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

from c2c.errors import ServiceError

__all__ = ["find_java", "java_major_version"]

_JVM_ROOT = Path("/usr/lib/jvm")


@functools.cache
def java_major_version(java: Path) -> int | None:
    """The major version `java -version` reports, or None if it does not run."""
    try:
        result = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _candidates(java_home: Path | None) -> list[Path]:
    found: list[Path] = []
    if java_home is not None:
        found.append(java_home / "bin" / "java")
    if os.environ.get("JAVA_HOME"):
        found.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        found.append(Path(on_path))
    if _JVM_ROOT.is_dir():
        found.extend(sorted(_JVM_ROOT.glob("*/bin/java")))
    return found


def find_java(min_major: int, *, java_home: Path | None, purpose: str, setting: str) -> Path:
    """A `java` executable of at least ``min_major``; the first candidate that fits.

    Raises ServiceError listing what was tried and the setting that names a JDK.
    """
    tried = []
    for java in _candidates(java_home):
        if not java.exists():
            continue
        major = java_major_version(java)
        if major is not None and major >= min_major:
            return java
        tried.append(f"{java} ({'does not run' if major is None else f'Java {major}'})")
    raise ServiceError(
        f"{purpose} needs Java {min_major} or newer; found none "
        f"(tried: {', '.join(tried) or 'nothing'}). Install a JDK {min_major}+ and point "
        f"{setting} at its home.",
        code="service.java",
    )
