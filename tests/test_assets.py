"""The one version pin and the ML settings are the same for docker compose and the local node."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reranker_plugin.mlcommons.pipeline import pipeline_model_id, render_pipeline
from reranker_plugin.node.assets import load_json, load_yaml, opensearch_version

ROOT = Path(__file__).resolve().parent.parent


def test_compose_uses_the_pinned_version_and_ml_settings():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["opensearch"]
    assert service["image"].startswith("opensearchproject/opensearch:${OPENSEARCH_VERSION")
    settings = load_json("ml-settings-local-dev.json")["persistent"]
    env = service["environment"]
    assert {k: str(v).lower() for k, v in settings.items()} == {k: env[k].lower() for k in settings}
    assert opensearch_version().count(".") == 2


@pytest.mark.parametrize("name", ["local-node.yml", "secure-node.yml"])
def test_recipe_pins_every_plugin_it_installs(name):
    recipe = load_yaml(name)
    version = recipe.get("version") or opensearch_version()
    names = {f"{p['artifact']}-{p['version'].replace('{v}', version)}.zip" for p in recipe["plugins"]}
    assert names <= set(recipe["pinned_sha256"])
    assert set(recipe.get("modules") or {}) <= set(recipe["required_modules"])


@pytest.mark.parametrize("name", ["local-node.yml", "secure-node.yml"])
def test_each_node_applies_the_dev_settings_and_only_the_secured_one_turns_access_control_on(name):
    recipe = load_yaml(name)
    assert recipe["ml_settings"] == "ml-settings-local-dev.json" and load_json(recipe["ml_settings"])["persistent"]
    override = recipe.get("ml_settings_override") or {}
    assert override == ({"plugins.ml_commons.model_access_control_enabled": True} if "secure" in name else {})


def test_production_settings_keep_access_control_on_and_ml_commons_default_breakers():
    """The defaults read from ML Commons 2.19.1's MLCommonsSettings (the same on 3.x)."""
    prod, dev = (load_json(f"ml-settings-{kind}.json")["persistent"] for kind in ("production", "local-dev"))
    ml = "plugins.ml_commons."
    assert set(prod) == set(dev)
    assert prod[ml + "model_access_control_enabled"] is True and dev[ml + "model_access_control_enabled"] is False
    assert (prod[ml + "native_memory_threshold"], prod[ml + "jvm_heap_memory_threshold"],
            prod[ml + "disk_free_space_threshold"]) == (90, 85, "5gb")
    assert prod[ml + "allow_registering_model_via_local_file"] is True and prod[ml + "only_run_on_ml_node"] is True


def test_secure_recipe_maps_users_only_to_roles_that_exist():
    recipe = load_yaml("secure-node.yml")
    defined = {name for name in load_yaml("security/roles.yml") if name != "_meta"} | {"all_access"}
    assert {role for roles in recipe["security"]["users"].values() for role in roles} <= defined
    assert "opensearch-security" in {p["artifact"] for p in recipe["plugins"]}


def test_pipeline_template_renders_model_and_fields():
    body = render_pipeline("abc123", ("title", "brand"))
    assert pipeline_model_id(body) == "abc123"
    assert body["response_processors"][0]["rerank"]["context"]["document_fields"] == ["title", "brand"]
