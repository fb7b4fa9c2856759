"""`reranker check` against the real node: all ok on the healthy node; a real fault fails its own line, exit 1."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from reranker_plugin.cli import cli
from reranker_plugin.jobs.check import missing_permissions

pytestmark = pytest.mark.integration
PROBES = ["reachable", "version", "plugins", "ml settings", "ml breakers", "permissions", "disk", "production"]
LOCAL_FILE = "plugins.ml_commons.allow_registering_model_via_local_file"


def check(url: str, *args: str):
    return CliRunner().invoke(cli, ["--url", url, "check", *args], catch_exceptions=False)


def lines_of(result) -> dict[str, str]:
    """Probe name -> its line (the production probe's lines joined by newlines)."""
    found: dict[str, str] = {}
    for line in result.stdout.splitlines():
        name = line[6:20].strip()
        if name in PROBES:
            found[name] = f"{found[name]}\n{line}" if name in found else line
    return found


@pytest.fixture(autouse=True)
def no_project_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the defaults, not the repository's reranker.yaml


def test_healthy_node_passes_every_probe_with_one_line_each(opensearch):
    result = check(opensearch.url)
    assert result.exit_code == 0, result.output
    lines = lines_of(result)
    assert list(lines) == PROBES
    assert all(lines[name].startswith("ok  ") for name in PROBES[:-1]), result.stdout
    assert "OpenSearch 3." in lines["version"] and "no security plugin" in lines["plugins"]


def test_dev_node_gets_one_warn_line_per_production_setting_it_lacks_and_is_not_changed(opensearch, client):
    before = client.cluster.get_settings(flat_settings=True)
    result = check(opensearch.url)
    assert result.exit_code == 0, result.output  # advice only: deploy + rerank work on the dev node
    warns = lines_of(result)["production"].splitlines()
    ml = "warn  production    plugins.ml_commons."
    fix = " (PUT _cluster/settings, as in opensearch/ml-settings-production.json)"
    assert warns == [
        f"{ml}only_run_on_ml_node is false: models run on data nodes, beside the searches (ML Commons advises "
        f"dedicated ML nodes) — add nodes with the ml role, then set it to true{fix}",
        f"{ml}native_memory_threshold is 100: ML Commons' native-memory breaker is looser than its default "
        f"— set it to 90{fix}",
        f"{ml}jvm_heap_memory_threshold is 100: ML Commons' heap breaker is looser than its default "
        f"— set it to 85{fix}",
        f"{ml}disk_free_space_threshold is 0b: ML Commons' free-disk breaker is looser than its default "
        f"— set it to 5gb{fix}",
        f"{ml}model_access_control_enabled is false: model access control is off: every user with ML Commons "
        f"permissions may use, undeploy or delete every model — set it to true{fix}",
    ], result.stdout
    assert client.cluster.get_settings(flat_settings=True) == before  # check reads, never writes


def test_unreachable_url_fails_its_line_skips_the_rest_and_exits_1():
    result = check("http://127.0.0.1:1")
    assert result.exit_code == 1
    lines = lines_of(result)
    reachable = lines["reachable"]
    assert reachable.startswith("FAIL") and "cannot reach OpenSearch at http://127.0.0.1:1" in reachable
    assert "reranker cluster up" in reachable  # the fix
    assert all(lines[name].startswith("skip") for name in PROBES[1:])
    assert result.stderr.strip().splitlines()[-1].startswith("error: 1 of 8 probes failed (reachable)")


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
