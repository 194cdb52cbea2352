"""The whole DAG with `dvc repro` in a throwaway copy of the repository, on minimal training budgets
and two of the four domains; then the closed loop: served feedback retrains into the next version.

This is the Quickstart's `make pipeline` minus the install: every stage script runs for real,
wired by dvc.yaml, tracked in a real sqlite MLflow store, on the default models: SmolLM2-135M-Instruct
imported from its wheel and the tiny t5_small.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from mlflow import MlflowClient
from plots_browser import chart_problems, drawn_charts, dump_dom

from aistudio.pipeline_plots import expected_plot_files
from aistudio.plots.page import write_page

BIN = Path(sys.executable).parent
# The module's first test also builds the `pipeline` fixture: a whole `dvc repro` (the real SmolLM2
# from its wheel, 2 fine-tunes and 2 adapters per model, quantization and evaluation at minimal
# budgets), which pytest-timeout counts against that test. pytest's 600 s default fits only a quiet
# machine; each dvc call has its own 1800 s limit (_dvc), so the test's limit sits just above it and
# a hung repro reports dvc's output (subprocess.TimeoutExpired) rather than pytest's bare kill.
DVC_TIMEOUT_S = 1800
pytestmark = pytest.mark.timeout(DVC_TIMEOUT_S + 300)
MODELS = ("smollm2", "t5_small")


def _dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "AISTUDIO_PIPELINE_ID": "e2e-test"}
    result = subprocess.run(
        [str(BIN / "dvc"), *args], cwd=repo, capture_output=True, text=True, timeout=DVC_TIMEOUT_S, env=env
    )
    if check:
        assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    return result


# Two of the four domains: the matrix of models x domains is still a matrix, and these two have the
# metrics of their own (pass@1 in the sandbox, ROUGE); creative and analysis differ from them only
# in data. Each domain costs every model a fine-tune, an adapter and its evaluation, twice over
# with the feedback loop's retrain, and the suite has 30 minutes.
DOMAINS = ("code", "summarization")


def _two_domains(params: dict) -> None:
    data = params["data"]
    data["domains"] = list(DOMAINS)
    # A source of another domain goes; the optional feedback source names its domain per record.
    data["sources"] = [s for s in data["sources"] if s.get("domain") in DOMAINS or s.get("optional")]
    data["balance"]["target_ratios"] = {d: 1 / len(DOMAINS) for d in DOMAINS}
    params["finetune"]["domains"] = {d: params["finetune"]["domains"].get(d, {}) for d in DOMAINS}
    gates = params["evaluation"]["gates"]
    gates["min_primary_gain"] = {d: gates["min_primary_gain"][d] for d in DOMAINS}


def _minimal_params(repo: Path) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    _two_domains(params)
    params["tokenizer"]["vocab_size"] = 512
    # SmolLM2's chat template alone is ~30 tokens: 96 leaves room for a target.
    params["training"].update(
        {
            "max_steps": 4,
            "eval_steps": 2,
            "save_steps": 2,
            "warmup_steps": 1,
            "early_stopping_patience": 0,
            "max_eval_samples": 2,
            "eval_batch_size": 2,
            "max_length": 96,
        }
    )
    params["finetune"]["defaults"].update({"max_steps": 2, "batch_size": 2, "eval_steps": 2})
    params["lora"]["training"].update({"max_steps": 2, "batch_size": 2, "eval_steps": 2, "save_steps": 2})
    params["lora"]["domains"] = {}  # the default code adapter's longer run is for the real model
    params["quantization"].update({"latency_prompts": 2, "max_new_tokens": 4, "perplexity_samples": 4})
    params["evaluation"].update(
        {"max_samples_per_domain": 2, "max_new_tokens": 4, "domain_max_new_tokens": {}, "batch_size": 2}
    )
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _declare_written_plots(repo, params)
    # Committed, so the dvc.yaml of HEAD (plots diff) and of the workspace are the same DAG.
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "commit", "-qam", "minimal budgets, two domains"], cwd=repo, check=True)


def _declare_written_plots(repo: Path, params: dict) -> None:
    """dvc.yaml's charts without the curves of the domains this run leaves out."""
    written = expected_plot_files(params)
    dvc = yaml.safe_load((repo / "dvc.yaml").read_text())
    for entry in dvc["plots"]:
        for props in entry.values():
            if isinstance(props.get("y"), dict):
                props["y"] = {file: columns for file, columns in props["y"].items() if file in written}
    (repo / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))


# About 20 GB with SmolLM2 (checkpoints with optimizer state, MLflow artifacts, DVC cache). A disk
# that cannot hold it would fail some stage with ENOSPC far into the run and take the rest of the
# suite down with it; the check says so up front instead.
PIPELINE_DISK_BYTES = 20 * 1024**3


@pytest.fixture(scope="module")
def pipeline(make_repo_copy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    free = shutil.disk_usage(tmp_path_factory.getbasetemp()).free
    if free < PIPELINE_DISK_BYTES:
        need, have = PIPELINE_DISK_BYTES / 1024**3, free / 1024**3
        pytest.skip(f"the e2e repro needs {need:.0f} GB free under pytest's temp dir; it has {have:.1f} GB")
    repo = make_repo_copy("e2e")
    # Removed whether or not the repro passed: pytest keeps its last three base temp dirs, and a few
    # failed runs' copies would fill a CI disk.
    try:
        _minimal_params(repo)
        _dvc(repo, "repro")
        yield repo
    finally:
        shutil.rmtree(repo, ignore_errors=True)


def test_every_stage_produced_its_outputs_and_metrics(pipeline: Path) -> None:
    for name in ("data_quality", "train_base", "quantization", "evaluation", "gate"):
        assert (pipeline / "metrics" / f"{name}.json").exists(), name
    imported = pipeline / "models/pretrained/smollm2"
    assert (imported / "chat_template.jinja").exists()
    base = json.loads((pipeline / "models/base/smollm2/aistudio.json").read_text())
    assert (base["purpose"], base["metrics"]["global_step"]) == ("quality", 0)  # measured, not trained
    assert set(base["metrics"]["domains"]) == set(DOMAINS)
    assert json.loads((pipeline / "models/base/t5_small/aistudio.json").read_text())["purpose"] == "plumbing"
    for model in MODELS:
        assert (pipeline / "models/base" / model / "model.safetensors").exists()
        assert (pipeline / "models/lora" / model / "code" / "adapter_model.safetensors").exists()
        assert (pipeline / "models/domain" / model / "summarization" / "model.safetensors").exists()
    quantization = json.loads((pipeline / "metrics/quantization.json").read_text())
    for model in MODELS:
        for variant in yaml.safe_load((pipeline / "params.yaml").read_text())["quantization"]["variants"]:
            entry = quantization[model][variant]
            assert entry["status"] == "ok" or (entry["status"] == "unavailable" and entry["reason"]), entry
    shown = _dvc(pipeline, "metrics", "show", "--json").stdout
    for needle in (
        "data_quality.json",
        "train_base.json",
        "evaluation.json",
        "gate.json",
        "quantization.json",
    ):
        assert needle in shown


def test_each_model_is_registered_and_promoted_or_held_with_a_reason(pipeline: Path) -> None:
    gate = json.loads((pipeline / "metrics/gate.json").read_text())
    for model in MODELS:
        registration = gate[model]["registration"]
        assert registration["version"] == 1
        assert registration["decision"] == "promoted" or registration["decision"].startswith("held: ")
        if registration["decision"] == "promoted":
            assert registration["aliases"].get("champion") == 1
        else:
            assert registration["aliases"].get("challenger") == 1
    for model in MODELS:  # the server's drift reference travels inside the bundle
        manifest = json.loads((pipeline / "models/bundles" / model / "manifest.json").read_text())
        assert "reference_profile.json" in manifest["files"]
    listed = subprocess.run(
        [sys.executable, "scripts/registry.py", "list", "--tracking-uri", "sqlite:///mlflow.db"],
        cwd=pipeline,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0 and "aistudio-smollm2" in listed.stdout


def test_runs_of_one_repro_share_a_pipeline_tag(pipeline: Path) -> None:
    import sqlite3

    db = sqlite3.connect(pipeline / "mlflow.db")
    stages = {
        stage
        for (stage,) in db.execute(
            "select t2.value from tags t1 join tags t2 on t1.run_uuid = t2.run_uuid "
            "where t1.key='aistudio.pipeline_id' and t1.value='e2e-test' and t2.key='aistudio.stage'"
        )
    }
    assert {
        "prepare_data",
        "import_base_models",
        "train_base_models",
        "finetune_domain_models",
        "train_lora_adapters",
        "quantize_models",
        "evaluate",
    } <= stages


def _declared_plots(repo: Path) -> dict[str, dict]:
    dvc = yaml.safe_load((repo / "dvc.yaml").read_text())
    return {plot_id: props for entry in dvc["plots"] for plot_id, props in entry.items()}


def _browser_problems(repo: Path, page: Path, profile: Path, revisions: int = 1) -> list[str]:
    declared = _declared_plots(repo)
    charts = drawn_charts(dump_dom(page, profile), set(declared))
    return [
        p
        for plot_id, props in declared.items()
        for p in chart_problems(repo, plot_id, props, charts.get(plot_id), revisions)
    ]


def test_dvc_plots_show_draws_every_declared_chart_in_a_browser_with_no_network(
    pipeline: Path, tmp_path: Path
) -> None:
    write_page(pipeline)  # what `make setup` does in a checkout
    out = tmp_path / "show"
    _dvc(pipeline, "plots", "show", "-o", str(out))
    html = (out / "index.html").read_text()
    assert not re.search(r"<script[^>]+src=", html), "the page loads a script from somewhere"
    assert _browser_problems(pipeline, out / "index.html", tmp_path / "profile") == []
    # The run's real curves: every training stage logged train and eval loss.
    for curve in (pipeline / "metrics/plots").rglob("*.csv"):
        rows = list(csv.DictReader(curve.open()))
        assert any(r["train_loss"] for r in rows) and any(r["eval_loss"] for r in rows), curve


def test_dvc_plots_diff_draws_both_revisions_offline(pipeline: Path, tmp_path: Path) -> None:
    write_page(pipeline)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "add", "metrics", "dvc.lock"], cwd=pipeline, check=True)
    subprocess.run([*git, "commit", "-qm", "pipeline results"], cwd=pipeline, check=True)
    out = tmp_path / "diff"
    _dvc(pipeline, "plots", "diff", "HEAD", "-o", str(out))
    assert _browser_problems(pipeline, out / "index.html", tmp_path / "profile", revisions=2) == []


def test_a_page_that_loads_vega_from_a_cdn_fails_the_browser_check(pipeline: Path, tmp_path: Path) -> None:
    # DVC's own page: {scripts} is where it puts its CDN <script src> tags.
    cdn_template = tmp_path / "cdn.html"
    cdn_template.write_text("<html><head>{scripts}</head><body>{plot_divs}</body></html>")
    out = tmp_path / "cdn"
    _dvc(pipeline, "plots", "show", "--html-template", str(cdn_template), "-o", str(out))
    assert "cdn.jsdelivr.net" in (out / "index.html").read_text()
    problems = _browser_problems(pipeline, out / "index.html", tmp_path / "profile")
    assert len(problems) == len(_declared_plots(pipeline))
    assert all("not drawn" in p for p in problems), problems


def test_second_repro_is_a_no_op_and_lora_change_reruns_only_lora_onwards(pipeline: Path) -> None:
    start = time.perf_counter()
    again = _dvc(pipeline, "repro")
    assert "Data and pipelines are up to date" in again.stdout, again.stdout[-2000:]
    assert time.perf_counter() - start < 20
    original = (pipeline / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["lora"]["r"] = 4
    (pipeline / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        changed = set(json.loads(_dvc(pipeline, "status", "--json").stdout))
    finally:  # the feedback loop below retrains on new data alone
        (pipeline / "params.yaml").write_text(original)
    assert changed, "changing lora.r changed nothing"
    assert all(s.startswith(("train_lora_adapters", "quantize_models")) for s in changed), changed


# --- the closed loop: served answers and their feedback become the next registered version ------

FEEDBACK_SECRET = "e2e-feedback-secret-0123456789abcdef01234567"
QUESTION = "Explain in one sentence why a binary search needs a sorted list of keys."
CORRECTION = (
    "A binary search halves the remaining keys at every comparison, which is only valid when the "
    "keys are in sorted order."
)
FEEDBACK_SOURCE = "data/raw/feedback/*.jsonl"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _serving(repo: Path, bundle: Path, store: Path, log_path: Path) -> Iterator[str]:
    """`scripts/serve.py` on loopback, recording answers and feedback into `store`; its base URL."""
    port = _free_port()
    env = {
        **os.environ,
        "AISTUDIO_FEEDBACK__RECORD": "true",
        "AISTUDIO_FEEDBACK__DIRECTORY": str(store),
        "AISTUDIO_FEEDBACK_SECRET": FEEDBACK_SECRET,
    }
    log = log_path.open("wb")
    server = subprocess.Popen(
        [sys.executable, "scripts/serve.py", "--bundle", str(bundle), "--port", str(port)],
        cwd=repo,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not _ready(url):
            assert server.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "the server was not ready within 180 s"
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


def _script(repo: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One of the project's CLI scripts, run in `repo` as a user would."""
    return subprocess.run(
        [sys.executable, script, *args], cwd=repo, capture_output=True, text=True, timeout=300, check=False
    )


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_served_feedback_retrains_into_a_new_version_whose_lineage_is_the_feedback_data(
    pipeline: Path, tmp_path: Path
) -> None:
    gate = json.loads((pipeline / "metrics/gate.json").read_text())
    first = {model: gate[model]["registration"]["version"] for model in MODELS}
    assert (
        FEEDBACK_SOURCE not in json.loads((pipeline / "metrics/data_quality.json").read_text())["per_source"]
    )
    store = tmp_path / "feedback-store"

    for key, value in (("user.name", "ops"), ("user.email", "ops@localhost")):  # who commits the data
        subprocess.run(["git", "config", key, value], cwd=pipeline, check=True)

    with _serving(pipeline, pipeline / "models/bundles/smollm2", store, tmp_path / "serve.log") as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
        served = [m.id for m in client.models.list().data]
        adapter = next(name for name in served if name.endswith(":summarization"))
        raw = client.chat.completions.with_raw_response.create(
            model=adapter, messages=[{"role": "user", "content": QUESTION}], max_tokens=8, temperature=0
        )
        answer = raw.parse()
        verdict = httpx.post(
            f"{url}/v1/feedback",
            json={
                "token": raw.headers["x-aistudio-feedback-token"],
                "outcome": "corrected",
                "correction": CORRECTION,
            },
            timeout=30,
        )
        assert verdict.status_code == 200, verdict.text
        collected = _script(pipeline, "scripts/collect_feedback.py", "--store", str(store))
        assert collected.returncode == 0, collected.stderr[-2000:]
        # What monitor_models.py --retrain does on new feedback: commit it, audit, `dvc repro`.
        env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "AISTUDIO_PIPELINE_ID": "e2e-retrain"}
        retrain = subprocess.run(
            [
                sys.executable,
                "scripts/monitor_models.py",
                "--server",
                url,
                "--retrain",
                "--reason",
                "e2e feedback",
            ],
            cwd=pipeline,
            capture_output=True,
            text=True,
            timeout=DVC_TIMEOUT_S,
            env=env,
        )
    assert retrain.returncode == 0, (retrain.stdout[-3000:], retrain.stderr[-3000:])

    data_version = json.loads((pipeline / "metrics/monitoring.json").read_text())["retrain"]["data_version"]
    committed = subprocess.run(
        ["git", "show", "--name-only", "--format=", data_version],
        cwd=pipeline,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert len(committed) == 1 and committed[0].startswith("data/raw/feedback/"), committed
    # prepare_data re-ran on the new data version: the corrected answer is one more input record.
    quality = json.loads((pipeline / "metrics/data_quality.json").read_text())
    assert quality["per_source"][FEEDBACK_SOURCE]["input"] == 1
    assert quality["reconciled"]
    record = json.loads((pipeline / committed[0]).read_text().splitlines()[0])
    assert (record["request_id"], record["output"]) == (answer.id, CORRECTION)

    gate = json.loads((pipeline / "metrics/gate.json").read_text())
    client = MlflowClient(tracking_uri="sqlite:///" + str(pipeline / "mlflow.db"))
    for model in MODELS:
        registration = gate[model]["registration"]
        assert registration["version"] == first[model] + 1
        version = client.get_model_version(registration["registered_model"], str(registration["version"]))
        assert version.tags["aistudio.git_commit"] == data_version

    audit = _script(pipeline, "scripts/registry.py", "audit", "--json")
    assert audit.returncode == 0, audit.stderr[-2000:]
    entries = [json.loads(line) for line in audit.stdout.splitlines()]
    # run_retrain audits the trigger before the repro and how it ended after it.
    started, finished = [e for e in entries if e["action"] == "retrain_trigger"]
    assert started["details"]["data_version"] == data_version and started["reason"] == "e2e feedback"
    assert (finished["outcome"], finished["details"]["returncode"]) == ("ok", 0)
    registered = [
        e for e in entries if e["action"] == "register" and started["seq"] < e["seq"] < finished["seq"]
    ]
    assert {(e["model"], e["version"]) for e in registered} == {
        (gate[m]["registration"]["registered_model"], gate[m]["registration"]["version"]) for m in MODELS
    }
    verified = _script(pipeline, "scripts/registry.py", "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
