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

FUZZ = settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = {name: [f.name for f in dataclasses.fields(cls)] for name, cls in SECTIONS.items()}
ENV_KEYS = {"url", "username", "password", "ca_certs"}  # OPENSEARCH_URL and co. override cluster.*

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


def _same(loaded, given) -> bool:
    """Whether a loaded field holds the YAML value (lists come back as tuples, ints may stand for floats)."""
    if isinstance(given, list):
        return isinstance(loaded, (list, tuple)) and len(loaded) == len(given) and all(map(_same, loaded, given))
    return loaded == given


def _assert_accepted_as_written(doc, config) -> None:
    """A config that loads held nothing, or known sections of known keys, each loaded with its value."""
    assert doc is None or isinstance(doc, dict), f"a {type(doc).__name__} document was accepted"
    for name, values in (doc or {}).items():
        assert name in SECTIONS, f"unknown section {name!r} was accepted"
        assert values is None or isinstance(values, dict), f"section {name!r} = {values!r} was accepted"
        for key, given in (values or {}).items():
            assert key in KEYS[name], f"unknown key {name}.{key!r} was accepted"
            if not (name == "cluster" and key in ENV_KEYS):  # the environment may override these
                loaded = getattr(getattr(config, name), key)
                assert _same(loaded, given), f"{name}.{key}: wrote {given!r}, loaded {loaded!r}"
    for name, cls in SECTIONS.items():
        part = getattr(config, name)
        for key, hint in typing.get_type_hints(cls).items():
            assert _matches(getattr(part, key), hint), f"{name}.{key} = {getattr(part, key)!r} is not {hint}"


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
    _assert_accepted_as_written(doc, config)


@FUZZ
@given(raw=st.binary(max_size=60))
def test_any_bytes_as_a_config_file_load_or_fail_in_one_line(raw):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reranker.yaml"
        path.write_bytes(raw)
        try:
            config = load_config(path)
        except ConfigError as err:
            assert "\n" not in str(err) and err.fix
            return
    _assert_accepted_as_written(yaml.safe_load(raw.decode("utf-8")), config)
