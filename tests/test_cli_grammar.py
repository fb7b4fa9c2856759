"""One CLI grammar: a walk over every command's --help and options, and the deprecated spellings that still work.

The grammar: the main artefact is written to `--output`, a results file to `--json PATH`, what is printed for
scripts is chosen with `--format json`, `--restart` ignores earlier work (resuming is the default), and
`--max-queries N` always means "use at most N queries of the split or log". Old spellings parse for one release
and print one warning line on stderr.
"""
from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from reranker_plugin.cli import cli
from reranker_plugin.cli.app import GrammarCommand, rewrite_deprecated, renamed
from reranker_plugin.jobs.search import read_body
from reranker_core.errors import ConfigError

CLOSED = "http://127.0.0.1:9"  # nothing listens: a command that needs the cluster fails fast


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], click.Command]:
    """Every command and group below ``group`` (itself included), by path, recursively."""
    found: dict[tuple[str, ...], click.Command] = {prefix: group}
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found.update(_commands(command, (*prefix, name)))
        else:
            found[(*prefix, name)] = command
    return found


COMMANDS = _commands(cli)
LEAVES = {path: c for path, c in COMMANDS.items() if not isinstance(c, click.Group)}
RETIRED = {"--out", "--resume", "--max-train-queries"}  # must never show in --help again

#: Every deprecated spelling: (command, old argv, the argv it means now). Arguments a command requires are filled.
DEPRECATED = [
    (("label",), ["runs/teacher", "--out", "pairs.parquet"], ["runs/teacher", "--output", "pairs.parquet"]),
    (("export",), ["--out", "model.zip"], ["--output", "model.zip"]),
    (("export",), ["--out=model.zip"], ["--output=model.zip"]),
    (("train-teacher",), ["--resume"], []),
    (("train-teacher",), ["--max-train-queries", "7"], ["--max-queries", "7"]),
    (("train-student",), ["--max-train-queries", "7"], ["--max-queries", "7"]),
    (("models", "list"), ["--json"], ["--format", "json"]),
    (("simulate-events",), ["--sidecar", "sim.json"], ["--json", "sim.json"]),
]


def _id(path: tuple[str, ...]) -> str:
    return " ".join(path) or "reranker"


def test_the_walk_reaches_the_new_commands():
    assert {("models", "deploy"), ("deploy",), ("pipeline", "list"), ("pipeline", "delete"),
            ("pipeline", "show"), ("search",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=_id)
def test_help_exits_0_and_its_description_ends_with_an_example(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no reranker.yaml is read
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    description = result.output.partition("Options:")[0].rstrip()
    head, found, example = description.rpartition("Example:")
    assert found, f"`reranker {_id(path)} --help` has no Example block"
    assert example.strip() and all(line.strip().startswith(("reranker", "OPENSEARCH_URL=", "export "))
                                   for line in example.strip().splitlines()), example
    assert "(DEPRECATED)" not in result.output


@pytest.mark.parametrize("path", sorted(LEAVES), ids=_id)
def test_option_names_follow_the_grammar(path):
    command = LEAVES[path]
    options = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
    names = {name for option in options for name in (*option.opts, *option.secondary_opts)}
    assert not names & RETIRED, f"{_id(path)} still shows {names & RETIRED}"
    assert not {n for n in names if n.startswith("--out") and n != "--output"}, names
    for option in options:
        if "--json" in option.opts:  # a results file, never a print switch
            assert not option.is_flag and isinstance(option.type, click.Path), f"{_id(path)}: --json takes a PATH"
        if "--format" in option.opts:
            assert isinstance(option.type, click.Choice) and "json" in option.type.choices
        if "--restart" in option.opts:
            assert option.is_flag
        if "--max-queries" in option.opts:
            assert "at most N" in (option.help or ""), f"{_id(path)}: --max-queries must say 'at most N ... queries'"


def test_every_deprecated_spelling_is_covered_here():
    declared = {(path, old) for path, command in LEAVES.items() if isinstance(command, GrammarCommand)
                for old in command.old_spellings}
    tested = {(path, token.partition("=")[0]) for path, argv, _ in DEPRECATED for token in argv
              if token.startswith("--")}
    assert declared and declared <= tested, f"untested deprecated spellings: {declared - tested}"


@pytest.mark.parametrize("path, old, new", DEPRECATED, ids=lambda v: " ".join(v) if isinstance(v, (list, tuple))
                         else str(v))
def test_a_deprecated_spelling_means_the_new_one_and_warns_once(path, old, new, capsys):
    command = LEAVES[path]
    meant = command.make_context(_id(path), list(old)).params
    assert capsys.readouterr().err.count("is deprecated") == 1
    assert meant == command.make_context(_id(path), list(new)).params
    assert capsys.readouterr().err == ""


def test_deprecated_options_never_show_in_help():
    for path, command in LEAVES.items():
        if isinstance(command, GrammarCommand):
            shown = CliRunner().invoke(cli, [*path, "--help"]).output
            for old in command.old_spellings:
                assert f"{old} " not in shown and f"{old}\n" not in shown, f"{_id(path)} --help shows {old}"


def test_a_deprecated_spelling_keeps_the_exit_code_and_adds_one_warning_line():
    new = CliRunner().invoke(cli, ["--url", CLOSED, "models", "list", "--format", "json"])
    old = CliRunner().invoke(cli, ["--url", CLOSED, "models", "list", "--json"])
    assert new.exit_code == old.exit_code == 1
    assert old.stderr.splitlines()[0] == "warning: --json is deprecated; use --format json"
    assert old.stderr.splitlines()[1:] == new.stderr.splitlines() and "error:" in new.stderr


def test_rewrite_handles_equals_repeats_and_stops_at_double_dash(capsys):
    spellings = {"--out": renamed("--output")}
    assert rewrite_deprecated(["--out=a", "--out", "b", "--", "--out"], spellings) == [
        "--output=a", "--output", "b", "--", "--out"]
    assert capsys.readouterr().err == "warning: --out is deprecated; use --output\n"
    assert rewrite_deprecated(["--output", "x", "--outer"], spellings) == ["--output", "x", "--outer"]
    assert capsys.readouterr().err == ""


def test_export_json_is_the_int8_verdict_file_and_needs_int8(tmp_path):
    assert LEAVES[("export",)].make_context("export", ["--int8", "--json", "v.json"]).params["verdict_path"].name \
        == "v.json"
    student = tmp_path / "student"
    student.mkdir()
    result = CliRunner().invoke(cli, ["export", str(student), "--json", str(tmp_path / "v.json")])
    assert result.exit_code == 2 and "add --int8, or drop --json" in result.stderr
    assert not (tmp_path / "student.zip").exists()  # refused before any work


@pytest.mark.parametrize("verb", ["train-teacher", "train-student"])
def test_training_resumes_by_default_and_restart_starts_over(verb):
    command = LEAVES[(verb,)]
    assert command.make_context(verb, []).params["restart"] is False
    assert command.make_context(verb, ["--restart"]).params["restart"] is True
    assert "resume" not in command.make_context(verb, []).params


def test_models_deploy_and_its_shortcut_take_the_same_options():
    def shape(command: click.Command) -> list[tuple]:
        return [(p.name, tuple(p.opts), tuple(p.secondary_opts)) for p in command.params]

    assert shape(COMMANDS[("models", "deploy")]) == shape(COMMANDS[("deploy",)])
    assert "shortcut for `reranker models deploy`" in CliRunner().invoke(cli, ["deploy", "--help"]).output


def test_cluster_status_reports_the_url_given_not_the_local_node():
    result = CliRunner().invoke(cli, ["--url", "http://127.0.0.1:9", "cluster", "status"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "http://127.0.0.1:9 did not answer" in result.stderr
    both = CliRunner().invoke(cli, ["--url", CLOSED, "cluster", "status", "--secure"])
    assert both.exit_code == 2 and "pass one of them" in both.stderr


# ------------------------------------------------------------- search --body
def test_body_query_text_comes_from_the_argument_first(tmp_path):
    path = tmp_path / "body.json"
    path.write_text(json.dumps({"query": {"match": {"title": "drill"}}, "ext": {"rerank": {"query_context": {
        "query_text": "stated"}}}}))
    assert read_body(path, "given", None)[1] == "given"
    assert read_body(path, None, None)[1] == "stated"


@pytest.mark.parametrize("query, text", [
    ({"match": {"title": "cordless drill"}}, "cordless drill"),
    ({"match": {"title": {"query": "white paint", "operator": "and"}}}, "white paint"),
    ({"bool": {"must": [{"term": {"brand": "x"}}, {"multi_match": {"query": "hose", "fields": ["title"]}}]}}, "hose"),
])
def test_body_query_text_is_found_in_the_query_dsl(tmp_path, query, text):
    path = tmp_path / "body.json"
    path.write_text(json.dumps({"query": query}))
    body, found = read_body(path, None, 3)
    assert found == text and body["size"] == 3 and body["query"] == query


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not readable JSON"),
    ("[1, 2]", "holds a JSON list, not an object"),
    ('{"query": {"term": {"brand": "x"}}}', "holds no query text"),
])
def test_a_bad_body_is_one_line_with_the_fix(tmp_path, content, message):
    path = tmp_path / "body.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        read_body(path, None, None)
    result = CliRunner().invoke(cli, ["--url", CLOSED, "search", "--body", str(path)])
    assert result.exit_code == 2 and message in result.stderr and result.stderr.count("\n") == 1


def test_search_needs_a_query_or_a_body():
    result = CliRunner().invoke(cli, ["--url", CLOSED, "search"])
    assert result.exit_code == 2 and "pass QUERY, or --body FILE" in result.stderr
    missing = CliRunner().invoke(cli, ["--url", CLOSED, "search", "--body", "/nonexistent/body.json"])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
