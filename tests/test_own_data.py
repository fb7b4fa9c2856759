"""`run --catalog --judgments --queries`: the flags map onto the config, and bad input stops the run first."""
from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from reranker_core.config import load_config
from reranker_core.errors import ConfigError
from reranker_plugin.cli import cli
from reranker_plugin.jobs.own_data import check_queries, check_teacher_only, with_own_data


def _files(root: Path) -> tuple[Path, Path, Path]:
    (root / "products.csv").write_text("id,title\np1,cordless drill\np2,paint roller\n", encoding="utf-8")
    (root / "judgments.csv").write_text("query,product_id,grade\ndrill,p1,1\ndrill,p2,0\n", encoding="utf-8")
    (root / "queries.jsonl").write_text(json.dumps({"search_term": "drill"}) + "\n", encoding="utf-8")
    return root / "products.csv", root / "judgments.csv", root / "queries.jsonl"


def test_catalog_and_judgments_become_the_generic_data_config(tmp_path):
    catalog, judgments, _ = _files(tmp_path)
    config = with_own_data(load_config(None), catalog, judgments, None, None)
    assert (config.data.kind, config.data.path, config.data.catalog) == ("generic", str(judgments), str(catalog))
    untouched = load_config(None)
    assert with_own_data(untouched, None, None, None, None) is untouched
    configured = dataclasses.replace(untouched, data=dataclasses.replace(untouched.data, catalog=str(catalog)))
    alone = with_own_data(configured, None, judgments, None, "generic")  # data.catalog from reranker.yaml
    assert (alone.data.kind, alone.data.path, alone.data.catalog) == ("generic", str(judgments), str(catalog))


@pytest.mark.parametrize("args, said", [
    ((True, False, None, None), "--catalog without --judgments"),
    ((True, True, Path("x.csv"), None), "cannot be combined with --data"),
    ((True, True, None, "wands"), "cannot be combined with --data or --kind wands"),
    ((False, True, None, None), "--judgments without a catalog"),
])
def test_refusals_name_the_flag_and_the_fix(tmp_path, args, said):
    catalog, judgments, _ = _files(tmp_path)
    with_catalog, with_judgments, data, kind = args
    with pytest.raises(ConfigError) as err:
        with_own_data(load_config(None), catalog if with_catalog else None, judgments if with_judgments else None,
                      data, kind)
    assert said in str(err.value) and " — " in str(err.value)  # the fix follows the dash


def test_a_missing_or_empty_query_log_is_refused(tmp_path):
    _, _, queries = _files(tmp_path)
    check_queries((queries,), "user_query")  # a search_term field is a query
    with pytest.raises(ConfigError, match="--log .*nope.jsonl: no such file"):
        check_queries((tmp_path / "nope.jsonl",), "user_query", "--log")
    (tmp_path / "empty.jsonl").write_text(json.dumps({"title": "no query here"}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="has no queries"):
        check_queries((tmp_path / "empty.jsonl",), "user_query")


@pytest.mark.parametrize("extra, said", [
    ((), "--catalog without --judgments"),
    (("--judgments", "missing.csv"), "--judgments missing.csv: no such file"),
    (("--judgments", "products.csv"), "lacks column(s) grade, product_id, query"),
    (("--judgments", "judgments.csv", "--queries", "nope.jsonl"), "--queries nope.jsonl: no such file"),
])
def test_run_refuses_bad_own_data_in_one_line_before_writing_anything(tmp_path, monkeypatch, extra, said):
    _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(cli, ["--url", "http://127.0.0.1:1", "run", "--catalog", "products.csv", *extra])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and said in lines[0], result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no runs/, nothing half-written


def test_make_run_passes_own_files_as_the_flags_and_keeps_the_dataset_default():
    repo = Path(__file__).resolve().parents[1]

    def planned(*args: str) -> str:
        done = subprocess.run(["make", "-n", "-C", str(repo), "run", *args], capture_output=True, text=True,
                              check=True)
        return next(line for line in done.stdout.splitlines() if "reranker run" in line)

    assert planned("CATALOG=p.csv", "JUDGMENTS=j.csv", "QUERIES=q.jsonl").split()[2:] == [
        "--catalog", "p.csv", "--judgments", "j.csv", "--queries", "q.jsonl"]
    assert "--data" in planned() and "--catalog" not in planned()
    assert planned("CATALOG=p.csv", "QUERIES=q.jsonl", "TEACHER_FROM=runs/teacher").split()[2:] == [
        "--catalog", "p.csv", "--queries", "q.jsonl", "--teacher-from", "runs/teacher"]


def test_without_judgments_the_refusal_names_teacher_from_and_teacher_from_maps_onto_the_config(tmp_path):
    catalog, _, _ = _files(tmp_path)
    with pytest.raises(ConfigError, match="pass --teacher-from DIR"):
        with_own_data(load_config(None), catalog, None, None, None)
    config = with_own_data(load_config(None), catalog, None, None, None, tmp_path / "teacher")
    assert (config.data.kind, config.data.path, config.data.catalog) == ("generic", None, str(catalog))
    assert config.teacher.from_path == str(tmp_path / "teacher")


def _teacher(root: Path) -> Path:
    (root / "teacher").mkdir()
    (root / "teacher/reranker.json").write_text(json.dumps({"role": "teacher", "kind": "ensemble"}), encoding="utf-8")
    return root / "teacher"


@pytest.mark.parametrize("case, said", [
    ("no teacher", "no teacher there"),
    ("a student", "no teacher there"),
    ("no log", "without a query log"),
    ("judgments", "the run trains its own teacher"),
])
def test_a_run_on_a_given_teacher_refuses_what_it_cannot_use(tmp_path, case, said):
    catalog, judgments, queries = _files(tmp_path)
    given = tmp_path / "missing" if case == "no teacher" else _teacher(tmp_path)
    if case == "a student":
        (given / "reranker.json").write_text(json.dumps({"role": "student"}), encoding="utf-8")
    config = with_own_data(load_config(None), catalog, judgments if case == "judgments" else None, None, None, given)
    with pytest.raises(ConfigError, match=said):
        check_teacher_only(config, () if case == "no log" else (queries,))
    if case == "no log":
        check_teacher_only(config, (queries,))  # everything there: no refusal
