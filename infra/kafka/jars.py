"""The Apache Kafka broker's jars: resolved once with Maven from `pom.xml` into a local cache."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

POM = Path(__file__).with_name("pom.xml")
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
MIN_JAVA = 17


class KafkaUnavailable(RuntimeError):
    """Apache Kafka cannot be run here: Java or Maven is missing, or its jars did not resolve."""


def kafka_version() -> str:
    """The broker version pinned in `pom.xml`."""
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if match is None:
        raise KafkaUnavailable(f"{POM}: no <kafka.version> property")
    return match[1]


def cache_root() -> Path:
    """Where resolved jars are kept: $STORYSTREAM_KAFKA_CACHE, else ~/.cache/storystream."""
    configured = os.environ.get("STORYSTREAM_KAFKA_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "storystream"


def java_binary() -> str:
    """The `java` to run the broker with (JAVA_HOME's, else the PATH's), checked to be 17+."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise KafkaUnavailable(
            f"java not found (JAVA_HOME or PATH): Apache Kafka needs a Java {MIN_JAVA}+ runtime "
            "(Debian: apt-get install openjdk-17-jre-headless)"
        )
    version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version)
    major = int(match[1]) if match else 0
    if major == 1 and match and match[2]:  # "1.8.0_..." is Java 8
        major = int(match[2])
    if major < MIN_JAVA:
        raise KafkaUnavailable(
            f"{java} is Java {major or '?'}; Apache Kafka 4 needs Java {MIN_JAVA}+ "
            "(Debian: apt-get install openjdk-17-jre-headless)"
        )
    return java


def kafka_classpath() -> str:
    """The broker's classpath, resolving its jars first if this version is not cached yet.

    Two processes asking at once (test workers, a test and `dev`) take turns on a lock file:
    the second finds the first one's jars.
    """
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    home = cache_root() / f"kafka-{kafka_version()}"
    libs = home / "libs"
    marker = home / "resolved"
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (marker.exists() and marker.read_text() == digest and libs.is_dir()):
            _resolve(home, libs)
            marker.write_text(digest)
    return str(libs / "*")


def _resolve(home: Path, libs: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable(
            "mvn not found on PATH: Maven resolves Apache Kafka's jars once "
            f"(from {POM}) into {home} (Debian: apt-get install maven)"
        )
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=home))
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise KafkaUnavailable(f"Maven could not resolve Apache Kafka's jars from {POM}:\n{tail}")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
