"""aistudio.deploy.actions: the exact kubectl command lines for apply and rollout steering,
with and without the Argo Rollouts plugin, and the plugin's `undo` rebuilt from ReplicaSets."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from aistudio.deploy.actions import (
    ABORT_STATUS_PATCH,
    PROMOTE_SPEC_PATCH,
    PROMOTE_STATUS_PATCH,
    apply_command,
    object_names,
    overlay_namespace,
    previous_pod_template,
    require_context,
    rollout_plan,
    show,
    undo_patch_command,
)
from aistudio.errors import UserError

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "k8s"
NS = "aistudio-production"
TARGET = ["model-server", "-n", NS, "--context", "prod"]


def test_each_overlay_deploys_into_its_own_namespace() -> None:
    assert {o: overlay_namespace(K8S, o) for o in ("dev", "staging", "production")} == {
        "dev": "aistudio-dev",
        "staging": "aistudio-staging",
        "production": "aistudio-production",
    }


def test_cluster_commands_need_a_context() -> None:
    with pytest.raises(UserError, match=r"^apply needs --context"):
        require_context("apply", None)
    assert require_context("promote", "prod") == "prod"


def test_apply_names_the_rendered_file_and_the_context() -> None:
    assert apply_command(Path("deploy/rendered/production.yaml"), "prod") == [
        "kubectl", "apply", "-f", "deploy/rendered/production.yaml", "--context", "prod",
    ]  # fmt: skip


def test_object_names_read_like_kubectl_apply_output() -> None:
    objects = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "model-server"}},
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "model-server"}},
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "model-server"},
        },
    ]
    assert object_names(objects) == [
        "service/model-server",
        "rollout.argoproj.io/model-server",
        "horizontalpodautoscaler.autoscaling/model-server",
    ]


@pytest.mark.parametrize(
    ("action", "verb"),
    [("status", ["get", "rollout"]), ("promote", ["promote"]), ("abort", ["abort"]), ("rollback", ["undo"])],
)
def test_with_the_plugin_every_action_is_one_plugin_command(action: str, verb: list[str]) -> None:
    plan = rollout_plan(action, NS, "prod", plugin=True)
    assert plan.commands == [["kubectl", "argo", "rollouts", *verb, *TARGET]]
    assert not plan.needs_history


def patch(body: str, *flags: str) -> list[str]:
    return ["kubectl", "patch", "rollouts.argoproj.io", *TARGET, *flags, "-p", body]


def test_without_the_plugin_promote_clears_pause_conditions_then_unpauses() -> None:
    assert rollout_plan("promote", NS, "prod", plugin=False).commands == [
        patch(PROMOTE_STATUS_PATCH, "--subresource=status", "--type=merge"),
        patch(PROMOTE_SPEC_PATCH, "--type=merge"),
    ]
    assert json.loads(PROMOTE_STATUS_PATCH) == {"status": {"pauseConditions": None}}
    assert json.loads(PROMOTE_SPEC_PATCH) == {"spec": {"paused": False}}


def test_without_the_plugin_abort_sets_status_abort() -> None:
    assert rollout_plan("abort", NS, "prod", plugin=False).commands == [
        patch(ABORT_STATUS_PATCH, "--subresource=status", "--type=merge")
    ]
    assert json.loads(ABORT_STATUS_PATCH) == {"status": {"abort": True}}


def test_without_the_plugin_status_reads_the_rollout_and_can_watch() -> None:
    [command] = rollout_plan("status", NS, "prod", plugin=False, watch=True).commands
    assert command[:9] == ["kubectl", "get", "rollouts.argoproj.io", *TARGET, "-o"]
    assert command[-1] == "--watch"


def test_without_the_plugin_rollback_first_lists_the_replicasets() -> None:
    plan = rollout_plan("rollback", NS, "prod", plugin=False)
    assert plan.needs_history
    assert plan.commands[0] == [
        "kubectl", "get", "replicasets", "-n", NS, "--context", "prod",
        "-l", "app.kubernetes.io/name=model-server", "-o", "json",
    ]  # fmt: skip
    assert "<pod template of the previous revision>" in show(plan.commands[1])


def test_printed_commands_paste_back_to_the_same_arguments() -> None:
    for command in rollout_plan("promote", NS, "prod", plugin=False).commands:
        assert shlex.split(show(command)) == command


def replicaset(revision: int | None, owner: str = "model-server", controller: bool = True) -> dict[str, Any]:
    annotations = {} if revision is None else {"rollout.argoproj.io/revision": str(revision)}
    return {
        "metadata": {
            "annotations": annotations,
            "ownerReferences": [{"kind": "Rollout", "name": owner, "controller": controller}],
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "x", "rollouts-pod-template-hash": f"h{revision}"}},
                "spec": {"containers": [{"name": "server", "image": f"ms:{revision}"}]},
            }
        },
    }


def test_rollback_picks_the_second_newest_revision_of_this_rollout() -> None:
    listing = {
        "items": [
            replicaset(4),
            replicaset(2),
            replicaset(5, owner="other-rollout"),
            replicaset(6, controller=False),
            replicaset(None),
            replicaset(3),
        ]
    }
    revision, template = previous_pod_template(listing)
    assert revision == 3
    assert template == {
        "metadata": {"labels": {"app": "x"}},
        "spec": {"containers": [{"name": "server", "image": "ms:3"}]},
    }
    assert listing["items"][5]["spec"]["template"]["metadata"]["labels"]["rollouts-pod-template-hash"] == "h3"


def test_rollback_patch_replaces_the_whole_pod_template() -> None:
    revision, command = undo_patch_command(NS, "prod", {"items": [replicaset(1), replicaset(2)]})
    assert revision == 1
    assert command[:-1] == patch("", "--type=json")[:-1]
    assert json.loads(command[-1]) == [
        {
            "op": "replace",
            "path": "/spec/template",
            "value": previous_pod_template({"items": [replicaset(1), replicaset(2)]})[1],
        }
    ]


def test_rollback_with_a_single_revision_says_there_is_nothing_to_return_to() -> None:
    with pytest.raises(
        UserError, match="has 1 revision\\(s\\) in the cluster; nothing earlier to roll back to"
    ):
        previous_pod_template({"items": [replicaset(1)]})
