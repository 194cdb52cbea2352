"""Render, check, apply and steer the model server's Kubernetes environments.

    python -m aistudio.deploy.cli <command> (or scripts/deploy_models.py <command>):

    render    --overlay production --model-version champion --image ghcr.io/aistudio/model-server:0.2.0
    validate  [--overlay production]          the overlays (bare and with their deployment config),
                                              and deploy/rendered/*.yaml if present
    apply     --overlay production --context prod [--yes]
    status | promote | abort | rollback  --overlay production --context prod [--yes]
    stage     the DVC `deploy` stage: every overlay with the registry's champion, validated
              (what scripts/deploy_models.py runs without a command)

render and stage take each environment's rollout values from --deployment-config
(configs/deployment_config.yaml); validate checks that file too.

Cluster commands are dry runs unless --yes: they print the exact kubectl command lines and
call nothing (`status` only reads, so it runs). Exit 2: bad input; exit 1: validation problems
or a failed kubectl.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from aistudio import layout, lineage
from aistudio.config import load_mlflow_config, read_yaml
from aistudio.deploy import actions, render
from aistudio.deploy.deployment_config import DeploymentConfig, load_deployment_config
from aistudio.deploy.validate import check_objects, validate_all, validate_overlay
from aistudio.errors import UserError


def _prog() -> str:
    # Run with -m, argv[0] is this file's path: show the command the user typed instead of "cli.py".
    script = Path(sys.argv[0]).name
    return "python -m aistudio.deploy.cli" if script == Path(__file__).name else script


def default_model(params_path: Path) -> str:
    """The model a deploy serves unless --model names one: the first of params.yaml's models."""
    models = read_yaml(params_path).get("models") or {}
    if not isinstance(models, dict) or not models:
        raise UserError(f"{params_path}: models: no model defined; add one or pass --model")
    return next(iter(models))


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--k8s", type=Path, default=layout.K8S_ROOT, help="kustomize root (default: k8s)")
    common.add_argument(
        "--rendered-dir",
        "--out",
        dest="rendered_dir",
        type=Path,
        default=layout.RENDERED_DIR,
        help="where rendered manifests are (default: deploy/rendered)",
    )
    registry = argparse.ArgumentParser(add_help=False)
    registry.add_argument(
        "--model",
        help="params model key; mlflow.yaml registry names it (default: the first of params.yaml's models)",
    )
    registry.add_argument("--params", type=Path, default=layout.PARAMS_FILE, help="default: params.yaml")
    registry.add_argument("--tracking-uri", help="MLflow tracking URI (default: mlflow.yaml's)")
    registry.add_argument("--mlflow-config", type=Path, default=layout.MLFLOW_FILE)
    registry.add_argument(
        "--image", help="registry/name:tag or @sha256 digest (default: the overlay's image)"
    )
    values = argparse.ArgumentParser(add_help=False)
    values.add_argument(
        "--deployment-config",
        type=Path,
        default=layout.DEPLOYMENT_CONFIG_FILE,
        help="per-environment strategy, steps, thresholds, replicas, resources "
        f"(default: {layout.DEPLOYMENT_CONFIG_FILE})",
    )
    cluster = argparse.ArgumentParser(add_help=False)
    cluster.add_argument("--overlay", required=True, help="dev, staging or production")
    cluster.add_argument("--context", help="kubeconfig context of the target cluster (required)")
    cluster.add_argument("--yes", action="store_true", help="run the commands (default: print them)")

    parser = argparse.ArgumentParser(prog=_prog(), description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("render", parents=[common, registry, values], help="pin a model version and image")
    p.add_argument("--overlay", required=True)
    p.add_argument("--model-version", required=True, help="a version number or an alias (champion, ...)")
    p = sub.add_parser(
        "validate", parents=[common, values], help="offline checks of overlays and rendered files"
    )
    p.add_argument("--overlay", help="only this overlay (default: all, plus the platform)")
    sub.add_parser("apply", parents=[common, cluster], help="kubectl apply deploy/rendered/<overlay>.yaml")
    steering = {
        "status": "show the Rollout: phase, step, stable and canary hashes (a read; runs without --yes)",
        "promote": "let a paused canary or blue-green rollout move on",
        "abort": "send all traffic back to the stable ReplicaSet",
        "rollback": "return the Rollout to its previous revision (argo rollouts undo)",
    }
    for action in actions.ROLLOUT_ACTIONS:
        p = sub.add_parser(action, parents=[common, cluster], help=steering[action])
        if action == "status":
            p.add_argument("--watch", action="store_true", help="keep watching")
    p = sub.add_parser("stage", parents=[common, registry, values], help="the DVC deploy stage")
    p.add_argument("--overlays", nargs="+", default=list(render.DEFAULT_OVERLAYS))
    p.add_argument("--metrics", type=Path, default=layout.DEPLOY_METRICS)
    return parser


def _registry(args: argparse.Namespace):
    """The MLflow registry of mlflow.yaml (or --tracking-uri), and the registered name of --model."""
    mlflow_cfg = load_mlflow_config(args.mlflow_config)
    name = render.registered_name(mlflow_cfg.registry, args.model or default_model(args.params))
    tracking_uri = args.tracking_uri or mlflow_cfg.tracking_uri
    store = Path(tracking_uri.removeprefix("sqlite:///")) if tracking_uri.startswith("sqlite:///") else None
    if store is not None and not store.is_file():  # MLflow would create an empty store here
        return None, name, tracking_uri
    from aistudio.registry import ModelRegistry, check_reachable  # mlflow takes seconds to import

    check_reachable(tracking_uri)
    return ModelRegistry(tracking_uri), name, tracking_uri


def _report(problems: list[str]) -> int:
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def _deployment(args: argparse.Namespace) -> DeploymentConfig:
    """configs/deployment_config.yaml, with one entry per overlay of --k8s."""
    return load_deployment_config(args.deployment_config, render.overlay_names(args.k8s))


def _render(args: argparse.Namespace) -> int:
    render.overlay_dir(args.k8s, args.overlay)
    deployment = _deployment(args)
    image = render.check_image(args.image) if args.image is not None else None
    registry, name, tracking_uri = _registry(args)
    if registry is None:
        raise UserError(f"no MLflow store at {tracking_uri}; register a model first (make pipeline)")
    pin = render.resolve_model_version(registry, name, args.model_version)
    objects = render.render_overlay(args.k8s, args.overlay, pin, image, deployment=deployment)
    shipped = render.served(objects)
    path = layout.rendered_path(args.overlay, args.rendered_dir)
    header = render.header_for(args.overlay, pin, shipped, "scripts/deploy_models.py render", deployment)
    render.write_manifest(path, render.manifest_text(objects, header))
    print(f"{path}: {len(objects)} objects, {pin.describe()}, image {shipped.image}")
    problems = [f"{args.overlay}: {p}" for p in check_objects(objects)]
    _audit_render(registry, name, args.overlay, shipped, path, problems)
    return _report(problems)


def _audit_render(registry, name: str, overlay: str, shipped: render.Served, path: Path, problems) -> None:
    """A rendered manifest in the registry's audit trail: what would run where, from which image."""
    version = int(shipped.model_version) if str(shipped.model_version).isdigit() else None
    details = {"overlay": overlay, "image": shipped.image, "rendered": str(path)}
    details["rendered_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    if problems:
        details["problems"] = len(problems)
    registry.audit.record("deploy_render", name, version, details, "", "failed" if problems else "ok")


def _validate(args: argparse.Namespace) -> int:
    deployment = _deployment(args)  # a bad config is exit 2 here too, before any overlay is rendered
    if args.overlay:
        results = {args.overlay: validate_overlay(render.overlay_dir(args.k8s, args.overlay))}
    else:
        results = validate_all(args.k8s)
    for overlay in [args.overlay] if args.overlay else render.overlay_names(args.k8s):
        if any("kustomize build failed" in p for p in results[overlay]):
            continue  # already reported; the configured render would fail the same way
        # What ships is the overlay with its deployment config: the values must land (else exit 2)
        # and the result pass the same checks as the bare overlay.
        objects = render.render_overlay(args.k8s, overlay, deployment=deployment)
        configured = [f"{overlay}: {p}" for p in check_objects(objects)]
        results[overlay] += [p for p in configured if p not in results[overlay]]
    for path in sorted(args.rendered_dir.glob("*.yaml")) if args.rendered_dir.is_dir() else []:
        if args.overlay in (None, path.stem):
            results[str(path)] = [f"{path}: {p}" for p in check_objects(render.load_manifest(path))]
    for name, problems in results.items():
        print(f"{name}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
    return _report([p for problems in results.values() for p in problems])


def _require_kubectl() -> None:
    if shutil.which("kubectl") is None:
        raise UserError("kubectl is not on PATH; install kubectl >= 1.27")


def _run(commands: list[list[str]]) -> int:
    _require_kubectl()
    for command in commands:
        print(f"$ {actions.show(command)}", flush=True)
        code = subprocess.run(command, check=False).returncode
        if code != 0:
            print(f"kubectl exited with {code}", file=sys.stderr)
            return 1
    return 0


def _dry_run(lines: list[str]) -> int:
    print("dry run, nothing was changed; add --yes to run:")
    print("\n".join(f"  {line}" for line in lines))
    return 0


def _apply(args: argparse.Namespace) -> int:
    context = actions.require_context("apply", args.context)
    namespace = actions.overlay_namespace(args.k8s, args.overlay)
    path = layout.rendered_path(args.overlay, args.rendered_dir)
    objects = render.load_manifest(path)
    problems = [f"{path}: {p}" for p in check_objects(objects)]
    if problems:
        return _report([*problems, f"refusing to apply {path}: fix and re-render it"])
    command = actions.apply_command(path, context)
    if args.yes:
        return _run([command])
    _dry_run([actions.show(command)])
    print(f"it would apply {len(objects)} objects in namespace {namespace} (context {context}):")
    print("\n".join(f"  {name}" for name in actions.object_names(objects)))
    return 0


def _steer(args: argparse.Namespace) -> int:
    context = actions.require_context(args.command, args.context)
    namespace = actions.overlay_namespace(args.k8s, args.overlay)
    plan = actions.rollout_plan(
        args.command, namespace, context, actions.argo_plugin_available(), getattr(args, "watch", False)
    )
    if not (args.yes or args.command in actions.READ_ONLY_ACTIONS):
        return _dry_run([actions.show(c) for c in plan.commands])
    if not plan.needs_history:
        return _run(plan.commands)
    # rollback without the plugin: the patch carries the previous ReplicaSet's pod template.
    listing = plan.commands[0]
    _require_kubectl()
    print(f"$ {actions.show(listing)}", flush=True)
    found = subprocess.run(listing, capture_output=True, text=True, check=False)
    if found.returncode != 0:
        print(found.stderr.strip() or f"kubectl exited with {found.returncode}", file=sys.stderr)
        return 1
    revision, patch = actions.undo_patch_command(namespace, context, json.loads(found.stdout))
    print(f"rolling back to revision {revision}")
    return _run([patch])


def _stage(args: argparse.Namespace) -> int:
    image = render.check_image(args.image) if args.image is not None else None
    for overlay in args.overlays:
        render.overlay_dir(args.k8s, overlay)
    deployment = _deployment(args)
    registry, name, _ = _registry(args)
    if registry is not None:  # no store, nothing to link: evaluate never registered anything
        lineage.link_dvc_upstream(load_mlflow_config(args.mlflow_config))
    results = render.render_and_validate_all(
        args.k8s,
        args.overlays,
        lambda: render.champion_pin(registry, name) if registry is not None else None,
        image=image,
        out_dir=args.rendered_dir,
        metrics_path=args.metrics,
        deployment=deployment,
    )
    for overlay, result in results.items():
        shipped = result.served
        if registry is not None:
            _audit_render(
                registry, shipped.model_name or name, overlay, shipped, result.path, result.problems
            )
        print(
            f"{overlay}: {result.objects} objects, {shipped.model_name} version {shipped.model_version} "
            f"({result.resolution}), image {shipped.image}, {len(result.problems)} problem(s)"
        )
    return _report([p for result in results.values() for p in result.problems])


_HANDLERS = {"render": _render, "validate": _validate, "apply": _apply, "stage": _stage}
COMMANDS: tuple[str, ...] = (*_HANDLERS, *actions.ROLLOUT_ACTIONS)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return _HANDLERS.get(args.command, _steer)(args)


if __name__ == "__main__":
    from aistudio.cli import run_cli

    run_cli(main)
