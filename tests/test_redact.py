"""A cluster URL's user and password never reach an error line, a log line or a repr.

The CLI paths run against a closed port (127.0.0.1:1): every command that talks
to the cluster fails there, which is the path that echoes the URL.
"""
from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from reranker_core.config import ClusterConfig, ConfigError
from reranker_core.redact import RedactingFilter, redact_url
from reranker_plugin.cli import cli

SECRET_URL = "http://admin:secret@127.0.0.1:1"
COMMANDS = [
    ["search", "cordless drill"],
    ["models", "list"],
    ["models", "list", "--format", "json"],
    ["models", "undeploy", "some-model"],
    ["models", "delete", "some-model"],
    ["pipeline", "show"],
]


@pytest.mark.parametrize("url, shown", [
    ("https://user:pass@host:9200", "https://***@host:9200"),
    ("https://user:p@ss@host:9200/prefix", "https://***@host:9200/prefix"),  # a raw @ in the password
    ("http://u:se/cret@h:1", "http://***@h:1"),  # a raw / in the password
    ("at http://a:b@h:1 (ConnectionError) and 'https://c:d@k'", "at http://***@h:1 (ConnectionError) and 'https://***@k'"),
    ("http://127.0.0.1:9200/path", "http://127.0.0.1:9200/path"),  # nothing to hide: unchanged
])
def test_redact_url_hides_user_and_password(url, shown):
    assert redact_url(url) == shown


def test_cluster_config_repr_hides_the_password():
    cfg = ClusterConfig(url=SECRET_URL, username="admin", password="secret2")
    assert "secret" not in repr(cfg) and "***@127.0.0.1:1" in repr(cfg) and "password='***'" in repr(cfg)


@pytest.mark.parametrize("url", ["ftp://admin:secret@host", "http://admin:secret@[::1", "http://admin:secret@h:99999"])
def test_a_refused_cluster_url_is_shown_redacted(url):
    with pytest.raises(ConfigError) as err:
        ClusterConfig(url=url)
    assert "secret" not in str(err.value) and "***@" in str(err.value)


def test_log_records_are_redacted():
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test_redact")
    logger.addHandler(handler)
    try:
        logger.warning("retrying %s after %s", SECRET_URL, "ConnectionError")
    finally:
        logger.removeHandler(handler)
    assert records == ["retrying http://***@127.0.0.1:1 after ConnectionError"]


def _assert_one_redacted_error(result) -> None:
    assert result.exit_code != 0, result.output
    assert "secret" not in result.output  # stdout and stderr together
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "***@127.0.0.1:1" in lines[0]  # still says which cluster


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_cli_errors_never_show_the_password_from_url_flag(argv):
    _assert_one_redacted_error(CliRunner().invoke(cli, ["--url", SECRET_URL, *argv]))


@pytest.mark.parametrize("argv", COMMANDS[:2], ids=" ".join)
def test_cli_errors_never_show_the_password_from_env_or_config(argv, tmp_path):
    config = tmp_path / "reranker.yaml"
    config.write_text(f"cluster:\n  url: {SECRET_URL}\n")
    _assert_one_redacted_error(CliRunner().invoke(cli, argv, env={"OPENSEARCH_URL": SECRET_URL}))
    _assert_one_redacted_error(CliRunner().invoke(cli, ["--config", str(config), *argv],
                                                  env={"OPENSEARCH_URL": None}))


def test_verbose_cli_never_shows_the_password(caplog):
    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(cli, ["-v", "--url", SECRET_URL, "models", "list"])
    assert result.exit_code != 0 and "secret" not in result.output
    assert caplog.records and "secret" not in caplog.text


def test_deploy_error_never_shows_the_password(tiny_zip):
    _assert_one_redacted_error(CliRunner().invoke(cli, ["--url", SECRET_URL, "deploy", str(tiny_zip)]))


def test_a_bad_url_flag_is_one_redacted_line():
    result = CliRunner().invoke(cli, ["--url", "ftp://admin:secret@host", "models", "list"])
    assert result.exit_code == 2 and "secret" not in result.output
    assert result.stderr.strip().startswith("error: cluster.url 'ftp://***@host'")
