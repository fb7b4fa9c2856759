"""Finding a JDK the pinned OpenSearch can run on."""
from __future__ import annotations

import pytest

from reranker_core.errors import LocalNodeError
from reranker_plugin.node.local import find_java, java_version


def test_missing_java_is_a_clear_error(tmp_path, monkeypatch):
    import reranker_plugin.node.local as cluster

    monkeypatch.setattr(cluster, "JVM_ROOT", tmp_path)
    monkeypatch.delenv("OPENSEARCH_JAVA_HOME", raising=False)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    old = tmp_path / "jdk-17"
    (old / "bin").mkdir(parents=True)
    (old / "bin" / "java").touch()
    (old / "release").write_text('JAVA_VERSION="17.0.15"\n')
    assert java_version(old) == 17
    with pytest.raises(LocalNodeError, match="no Java 21\\+ found"):
        find_java(None, 21)


def test_max_version_skips_a_too_new_jdk(tmp_path, monkeypatch):
    import reranker_plugin.node.local as cluster

    monkeypatch.setattr(cluster, "JVM_ROOT", tmp_path)
    monkeypatch.delenv("OPENSEARCH_JAVA_HOME", raising=False)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    for version in ("17.0.15", "25.0.3"):
        home = tmp_path / f"jdk-{version.split('.')[0]}"
        (home / "bin").mkdir(parents=True)
        (home / "bin" / "java").touch()
        (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    assert find_java(None, 17).name == "jdk-25"
    assert find_java(None, 17, 21).name == "jdk-17"
    with pytest.raises(LocalNodeError, match="no Java 21-21 found"):
        find_java(None, 21, 21)
