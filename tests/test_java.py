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
