"""Roles in the model-server renders: CI may steer a Rollout and read its analysis, nothing more,
and the server itself holds no API token. Each broken rule is one named problem."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aistudio.deploy.rbac import check_rbac
from aistudio.deploy.validate import check_objects
from aistudio.deploy.validation.objects import pod_spec_of
from aistudio.deploy.validation.rendering import render

REPO_K8S = Path(__file__).resolve().parents[3] / "k8s"


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    return render(REPO_K8S / "overlays" / "production")


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def test_the_deployer_may_steer_rollouts_and_read_analysis_runs_only(production) -> None:
    rules = _one(production, "Role", "model-server-deployer")["rules"]
    granted = {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    writes = {(g, r, v) for g, r, v in granted if v not in ("get", "list", "watch")}
    assert writes == {("argoproj.io", "rollouts", "patch"), ("argoproj.io", "rollouts/status", "patch")}
    assert ("argoproj.io", "analysisruns", "get") in granted
    assert {r for _, r, _ in granted} == {"rollouts", "rollouts/status", "analysisruns", "replicasets"}


def test_the_viewer_only_reads_and_never_secrets_or_logs(production) -> None:
    rules = _one(production, "Role", "model-server-viewer")["rules"]
    assert {v for rule in rules for v in rule["verbs"]} == {"get", "list", "watch"}
    resources = {r for rule in rules for r in rule["resources"]}
    assert "secrets" not in resources and "pods/log" not in resources and "configmaps" not in resources


def test_both_roles_are_bound_to_the_ci_account_in_the_environment_namespace(production) -> None:
    for binding, role in (
        ("aistudio-ci-deployer", "model-server-deployer"),
        ("aistudio-ci-viewer", "model-server-viewer"),
    ):
        found = _one(production, "RoleBinding", binding)
        assert found["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role}
        assert found["subjects"] == [
            {"kind": "ServiceAccount", "name": "aistudio-ci", "namespace": "aistudio-production"}
        ]


def test_the_model_server_runs_without_an_api_token(production) -> None:
    assert _one(production, "ServiceAccount", "model-server")["automountServiceAccountToken"] is False
    pod = pod_spec_of(_one(production, "Rollout", "model-server"))
    assert pod["serviceAccountName"] == "model-server" and pod["automountServiceAccountToken"] is False
    bound = {s["name"] for o in production if o["kind"] == "RoleBinding" for s in o["subjects"]}
    assert "model-server" not in bound


def test_the_repository_roles_pass_every_check(production) -> None:
    assert check_rbac(production, pod_spec_of) == []


def _role(objects, name="model-server-deployer"):
    return _one(objects, "Role", name)


BREAKS: dict[str, tuple[Callable[[list[dict[str, Any]]], None], str]] = {
    "wildcard verb": (
        lambda o: _role(o)["rules"][0]["verbs"].append("*"),
        "Role/model-server-deployer: rules[0].verbs contains '*'",
    ),
    "secrets": (
        lambda o: _role(o, "model-server-viewer")["rules"][2]["resources"].append("secrets"),
        "Role/model-server-viewer: rules[2] grants access to secrets",
    ),
    "delete": (
        lambda o: _role(o)["rules"][0]["verbs"].append("delete"),
        "Role/model-server-deployer: rules[0] grants delete",
    ),
    "cluster role": (
        lambda o: o.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "x"},
                "rules": [],
            }
        ),
        "ClusterRole/x: cluster-wide RBAC in a model-server render",
    ),
    "server bound": (
        lambda o: _one(o, "RoleBinding", "aistudio-ci-viewer")["subjects"][0].update(name="model-server"),
        "RoleBinding/aistudio-ci-viewer: binds a role to model-server, which Rollout/model-server runs as",
    ),
    "token mounted": (
        lambda o: _one(o, "ServiceAccount", "aistudio-ci").pop("automountServiceAccountToken"),
        "ServiceAccount/aistudio-ci: set automountServiceAccountToken: false",
    ),
    "pod mounts token": (
        lambda o: pod_spec_of(_one(o, "Rollout", "model-server")).update(automountServiceAccountToken=True),
        "Rollout/model-server: pod template mounts a service account token",
    ),
    "unknown role": (
        lambda o: _one(o, "RoleBinding", "aistudio-ci-deployer")["roleRef"].update(name="admin"),
        "RoleBinding/aistudio-ci-deployer: roleRef Role/admin is not a Role in the render",
    ),
}


@pytest.mark.parametrize("broken", sorted(BREAKS))
def test_each_broken_rule_is_named_by_the_offline_validation(production, broken: str) -> None:
    objects = copy.deepcopy(production)
    change, expected = BREAKS[broken]
    change(objects)
    problems = check_objects(objects)
    assert [p for p in problems if p.startswith(expected)], problems
