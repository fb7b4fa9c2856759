"""Fuzzed YAML configs: each is loaded with every field of its declared type, or refused with one ConfigError
line naming the key — never another exception, never a wrong-typed value passed on to a long run."""
from __future__ import annotations

import dataclasses
import tempfile
import types
import typing
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reranker_core.config import SECTIONS, ConfigError, load_config

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = {name: [f.name for f in dataclasses.fields(cls)] for name, cls in SECTIONS.items()}

scalar = (st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
          | st.text(max_size=12))
value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                                           inner, max_size=3),
                     max_leaves=6)
section = st.sampled_from(sorted(SECTIONS)).flatmap(
    lambda name: st.tuples(st.just(name), st.dictionaries(st.sampled_from(KEYS[name]) | st.text(max_size=8),
                                                          value, max_size=3) | value))
document = st.lists(section, max_size=3).map(dict) | st.dictionaries(st.integers() | st.text(max_size=5), value,
                                                                  max_size=3)


def _matches(value, hint) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, float)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (bool, str):
        return isinstance(value, hint)
    if origin is tuple:
        return isinstance(value, tuple)
    if origin is dict:
        return isinstance(value, dict)
    return True


@FUZZ
@given(doc=document)
def test_any_yaml_config_loads_typed_or_fails_in_one_line(doc):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reranker.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        try:
            config = load_config(path)
        except ConfigError as err:
            assert "\n" not in str(err) and err.fix
            return
    for name, cls in SECTIONS.items():
        part = getattr(config, name)
        for key, hint in typing.get_type_hints(cls).items():
            assert _matches(getattr(part, key), hint), f"{name}.{key} = {getattr(part, key)!r} is not {hint}"


@FUZZ
@given(raw=st.binary(max_size=60))
def test_any_bytes_as_a_config_file_load_or_fail_in_one_line(raw):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reranker.yaml"
        path.write_bytes(raw)
        try:
            load_config(path)
        except ConfigError as err:
            assert "\n" not in str(err) and err.fix
