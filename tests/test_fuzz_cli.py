"""Fuzzed command lines: any mix of a command's own options with odd values ends in a clean exit — usage error (2)
or one error line (1) — never a traceback. The cluster URL points at a closed port and the working directory is
empty, so nothing real is touched."""
from __future__ import annotations

import os
import tempfile

import click
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reranker_plugin.cli import cli

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SKIPPED = {"run", "cluster up", "cluster down"}  # they start or stop the real local node


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], click.Command]:
    found = {}
    for name, command in group.commands.items():
        path = (*prefix, name)
        if isinstance(command, click.Group):
            found.update(_commands(command, path))
        elif " ".join(path) not in SKIPPED:
            found[path] = command
    return found


COMMANDS = _commands(cli)
value = st.one_of(st.text(max_size=12), st.integers(-5, 10**6).map(str), st.sampled_from(
    ["", "-1", "0", "nan", "/nonexistent/file.csv", "runs", ".", "--", "a=b", "homedepot", "esci", "1e9"]))


@st.composite
def command_line(draw) -> list[str]:
    path = draw(st.sampled_from(sorted(COMMANDS)))
    options = [opt for p in COMMANDS[path].params for opt in p.opts if opt.startswith("--") and opt != "--help"]
    argv = list(path)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["option", "option", "value"]))
        if kind == "option" and options:
            argv += [draw(st.sampled_from(options)), draw(value)]
        else:
            argv.append(draw(value))
    return argv


@FUZZ
@given(argv=command_line())
def test_any_command_line_exits_cleanly(argv):
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            result = runner.invoke(cli, ["--url", "http://127.0.0.1:9", *argv])
        finally:
            os.chdir(cwd)
    assert result.exit_code in (0, 1, 2), (argv, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (argv, repr(result.exception))
    assert "Traceback" not in result.output, (argv, result.output)
    lines = result.stderr.strip().splitlines()
    if result.exit_code == 1 or (lines and lines[0].startswith("error:")):  # not click's own usage errors
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, result.stderr)
