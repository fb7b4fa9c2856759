"""Every command's and group's --help shows an example of itself: a newcomer copies a line and edits it."""
from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from reranker_plugin.cli import cli


def _paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The group itself and every command below it, recursively through subgroups."""
    found = [prefix]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += _paths(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


PATHS = _paths(cli)


def test_the_walk_reaches_nested_commands():
    assert {(), ("export",), ("cluster",), ("cluster", "up"), ("models", "undeploy"), ("run",)} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "reranker")
def test_help_ends_its_description_with_an_example_of_the_command(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no reranker.yaml is read
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    description, _, _ = result.output.partition("Options:")
    example = description.split("Example", 1)[1]
    assert " ".join(("reranker", *path)) in example, f"the example does not show `reranker {' '.join(path)}`"
