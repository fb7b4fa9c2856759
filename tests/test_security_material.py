"""Certificates, passwords and roles generated for the secured local node."""
from __future__ import annotations

import ipaddress
import json
import stat

import bcrypt
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding

from reranker_plugin.node import security

USERS = {"admin": ["all_access"], "reranker": ["reranker_deployer"], "outsider": ["reranker_monitor"]}


def test_material_is_generated_once_and_consistent(tmp_path):
    folder = tmp_path / "security"
    creds = security.ensure_material(folder, USERS)
    assert set(creds.passwords) == set(USERS) and len(set(creds.passwords.values())) == 3
    assert stat.S_IMODE((folder / "credentials.json").stat().st_mode) == 0o600
    assert security.ensure_material(folder, USERS) == creds  # reused, not regenerated

    ca = x509.load_pem_x509_certificate((folder / "root-ca.pem").read_bytes())
    node = x509.load_pem_x509_certificate((folder / "node.pem").read_bytes())
    ca.public_key().verify(node.signature, node.tbs_certificate_bytes, padding.PKCS1v15(),
                           node.signature_hash_algorithm)
    assert node.subject.rfc4514_string() == security.NODE_DN
    sans = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert b"BEGIN PRIVATE KEY" in (folder / "node-key.pem").read_bytes()  # PKCS#8, as the plugin wants

    users = yaml.safe_load((folder / "internal_users.yml").read_text())
    for user, password in creds.passwords.items():
        assert bcrypt.checkpw(password.encode(), users[user]["hash"].encode())
        assert password not in (folder / "internal_users.yml").read_text()
    mapping = yaml.safe_load((folder / "roles_mapping.yml").read_text())
    assert mapping["reranker_deployer"]["users"] == ["reranker"]
    assert json.loads((folder / "credentials.json").read_text())["passwords"] == creds.passwords


def test_role_requests_cover_every_role_and_mapping():
    requests = dict(security.role_requests(USERS))
    deployer = requests["/_plugins/_security/api/roles/reranker_deployer"]
    ml = sorted(a.removeprefix("cluster:admin/opensearch/ml/") for a in deployer["cluster_permissions"]
                if a.startswith("cluster:admin/opensearch/ml"))
    assert ml == sorted(["model_groups/search", "register_model_group", "models/search", "models/get",
                         "register_model_meta", "upload_model_chunk", "deploy_model", "deploy_model_on_nodes",
                         "tasks/get", "predict", "stats/nodes", "undeploy_models", "undeploy_model",
                         "models/delete"])  # exactly what reranker calls: no wildcard
    assert [p["index_patterns"] for p in deployer["index_permissions"]] == [["products*"]]
    assert requests["/_plugins/_security/api/rolesmapping/reranker_monitor"] == {"users": ["outsider"]}
    assert "reserved" not in deployer
