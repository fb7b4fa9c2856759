"""`reranker check` against the real node: all ok on the healthy node; a real fault fails its own line, exit 1."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from reranker_plugin.cli import cli
from reranker_plugin.jobs.check import missing_permissions

pytestmark = pytest.mark.integration
PROBES = ["reachable", "version", "plugins", "ml settings", "ml breakers", "permissions", "disk"]
LOCAL_FILE = "plugins.ml_commons.allow_registering_model_via_local_file"


def check(url: str, *args: str):
    return CliRunner().invoke(cli, ["--url", url, "check", *args], catch_exceptions=False)


def lines_of(result) -> dict[str, str]:
    """Probe name -> its line."""
    found = {}
    for line in result.stdout.splitlines():
        name = line[6:20].strip()
        if name in PROBES:
            found[name] = line
    return found


@pytest.fixture(autouse=True)
def no_project_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the defaults, not the repository's reranker.yaml


def test_healthy_node_passes_every_probe_with_one_line_each(opensearch):
    result = check(opensearch.url)
    assert result.exit_code == 0, result.output
    lines = lines_of(result)
    assert list(lines) == PROBES
    assert all(line.startswith("ok  ") for line in lines.values()), result.stdout
    assert "OpenSearch 3." in lines["version"] and "no security plugin" in lines["plugins"]


def test_unreachable_url_fails_its_line_skips_the_rest_and_exits_1():
    result = check("http://127.0.0.1:1")
    assert result.exit_code == 1
    lines = lines_of(result)
    reachable = lines["reachable"]
    assert reachable.startswith("FAIL") and "cannot reach OpenSearch at http://127.0.0.1:1" in reachable
    assert "reranker cluster up" in reachable  # the fix
    assert all(lines[name].startswith("skip") for name in PROBES[1:])
    assert result.stderr.strip().splitlines()[-1].startswith("error: 1 of 7 probes failed (reachable)")


def test_setting_that_refuses_uploaded_models_fails_ml_settings_naming_it_and_the_fix(opensearch, client):
    """Set on the node for the length of one check (transient, so a node restart also clears it), then restored."""
    try:
        client.cluster.put_settings(body={"transient": {LOCAL_FILE: False}})
        result = check(opensearch.url)
    finally:
        client.cluster.put_settings(body={"transient": {LOCAL_FILE: None}})
    assert result.exit_code == 1, result.output
    line = lines_of(result)["ml settings"]
    assert line.startswith("FAIL") and f"{LOCAL_FILE} is false" in line and "set it to true" in line
    assert "(ml settings)" in result.stderr
    assert LOCAL_FILE not in client.cluster.get_settings(flat_settings=True)["transient"]  # restored
    assert check(opensearch.url).exit_code == 0


def test_permission_reads_are_allowed_without_the_security_plugin(client):
    assert missing_permissions(client, "products-absent-index") == []
