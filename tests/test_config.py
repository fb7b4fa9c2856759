"""Config loading: defaults, YAML, environment and flag overrides, and clear errors."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reranker_core.config import Config, load_config, override
from reranker_core.errors import ConfigError
from reranker_plugin.cli import cli


def test_defaults_and_repository_example_agree(monkeypatch):
    monkeypatch.delenv("OPENSEARCH_URL", raising=False)
    from pathlib import Path

    example = load_config(Path(__file__).resolve().parent.parent / "reranker.yaml")
    assert example == Config()


def test_yaml_values_env_and_flags(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("cluster: {url: 'http://a:1'}\ndeploy: {index: shop, document_fields: [title, brand]}\n")
    monkeypatch.setenv("OPENSEARCH_URL", "https://u:p@b:9443")
    monkeypatch.setenv("OPENSEARCH_CA_CERTS", "/etc/ca.pem")
    cfg = load_config(path)
    assert cfg.cluster.url == "https://u:p@b:9443"
    assert cfg.cluster.ca_certs == "/etc/ca.pem"
    assert cfg.deploy.document_fields == ("title", "brand")
    assert override(cfg.deploy, index="other", pipeline=None).index == "other"


@pytest.mark.parametrize("text, message", [
    ("deploy: {indx: shop}\n", "unknown key(s) indx in section 'deploy'"),
    ("deploi: {}\n", "unknown section(s) deploi"),
    ("cluster: {url: 'ftp://x'}\n", "is not an http(s) URL"),
    ("deploy: {document_fields: []}\n", "document_fields is empty"),
    ("local_node: {heap: lots}\n", "is not like 2g or 512m"),
    ("cluster: [unclosed\n", "is not valid UTF-8 YAML"),
    ("engine: {kind: spark}\n", "engine.kind 'spark' is unknown"),
    ("engine: {scoring_actors: 0}\n", "engine.scoring_actors must be positive"),
    ("local_node: {secure_port: 0}\n", "local_node.secure_port 0 is out of range"),
    ("teacher: {precision: fp16}\n", "teacher.precision 'fp16' is unknown"),
    ("student: {precision: half}\n", "student.precision 'half' is unknown"),
    ("clicks: {metric: ndcg}\n", "clicks.metric 'ndcg' is unknown"),
    ("clicks: {sessions: 0}\n", "clicks.sessions must be positive"),
    ("clicks: {unjudged_attractiveness: 1.5}\n", "the attractiveness values and noise in [0, 1]"),
    ("clicks: {noise: -0.1}\n", "the attractiveness values and noise in [0, 1]"),
    ("teacher: {implicit_weight: 0.5}\n", "teacher.implicit_judgments is not"),
    ("teacher: {behaviour: sessions}\n", "teacher.behaviour 'sessions' is unknown"),
    ("teacher: {behaviour: neighbours}\n", "teacher.behaviour needs teacher.kind ensemble and teacher.implicit_"),
    ("teacher: {behaviour: neighbours, kind: llm, implicit_judgments: j.json}\n", "needs teacher.kind ensemble"),
    ("teacher: {behaviour_top_n: 0}\n", "teacher.behaviour_top_n must be >= 1"),
])
def test_bad_config_is_named(tmp_path, text, message, monkeypatch):
    monkeypatch.delenv("OPENSEARCH_URL", raising=False)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)


def test_cli_reports_config_errors_in_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"deploy: {index: \xff\xfe}\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "models", "list"])
    assert result.exit_code == 2
    assert "bad.yaml is not valid UTF-8 YAML" in result.output
    assert "Traceback" not in result.output


def test_cli_unreachable_cluster_is_one_clear_line():
    result = CliRunner().invoke(cli, ["--url", "http://127.0.0.1:9", "models", "list"])
    assert result.exit_code == 1
    assert "cannot reach OpenSearch at http://127.0.0.1:9" in result.output
    assert "reranker cluster up" in result.output
    assert "Traceback" not in result.output


def test_cli_rejects_a_broken_zip_before_touching_any_cluster(tmp_path):
    bad = tmp_path / "model.zip"
    bad.write_bytes(b"not a zip")
    result = CliRunner().invoke(cli, ["--url", "http://127.0.0.1:9", "deploy", str(bad)])
    assert result.exit_code == 1
    assert "model.zip is not a zip file" in result.output


def test_run_without_a_dataset_says_so_in_one_line(tmp_path, monkeypatch):
    """`reranker run` with no dataset configured stops with the usage error, not a traceback."""
    monkeypatch.chdir(tmp_path)  # no reranker.yaml here, so no dataset is configured
    monkeypatch.delenv("OPENSEARCH_URL", raising=False)
    result = CliRunner().invoke(cli, ["run"])
    assert result.exit_code == 2, result.output
    assert "no dataset given" in result.output and "Traceback" not in result.output


def test_every_config_profile_loads_and_raises_budgets():

    profiles = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))
    assert profiles
    for path in profiles:
        loaded = load_config(path)
        assert loaded.augment.top_k > Config().augment.top_k  # a bigger pool: the student's budget follows it


def test_ray_address_flag_implies_the_ray_engine():
    from reranker_plugin.cli.app import with_engine

    joined = with_engine(Config(), None, "ray://head:10001").engine
    assert (joined.kind, joined.ray_address) == ("ray", "ray://head:10001")
    assert with_engine(Config(), None, None).engine.kind == "local"
    assert with_engine(Config(), "ray", None).engine.ray_address is None  # a Ray started on this machine
