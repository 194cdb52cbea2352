"""The loop closes: serve → answers + feedback by token (on another replica) → collect → a real
`dvc repro` re-runs prepare_data, whose new splits hold the corrected answer.

Two real uvicorn servers (replicas) share the feedback secret and the store directory, as pods
share a Secret and a PVC; the official `openai` client asks, httpx sends the verdicts. The repro
runs in a throwaway git+DVC copy of the repository with its own cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from aistudio import layout
from aistudio.audit import AuditTrail, FileAuditStore
from aistudio.feedback.collect import collect_feedback
from aistudio.feedback.retrain import run_retrain, snapshot_feedback
from aistudio.feedback.store import read_events
from aistudio.feedback.tokens import TOKEN_HEADER, TokenSigner

BIN = Path(sys.executable).parent
SECRET = "feedback-secret-0123456789abcdef0123456789"
DOMAINS = ["code", "creative", "analysis", "summarization"]
QUESTION = "Explain in one sentence why a binary search needs a sorted list of keys."
CORRECTION = (
    "A binary search discards half of the remaining keys at every comparison, which is only valid "
    "when the keys are in sorted order."
)


@pytest.fixture(scope="module")
def replicas(
    kit: Any, tiny_bundles: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, Any, Path]]:
    store = tmp_path_factory.mktemp("feedback-store")
    settings = {"feedback": {"record": True, "directory": str(store)}, "feedback_secret": SECRET}
    with (
        kit.run_server(tiny_bundles["causal"], settings) as first,
        kit.run_server(tiny_bundles["causal"], settings) as second,
    ):
        yield first, second, store


def _ask(server: Any, model: str, content: str, **extra: Any) -> tuple[str, str]:
    client = openai.OpenAI(
        base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0, timeout=30
    )
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], max_tokens=6, temperature=0, **extra
    )
    answer = raw.parse()
    return answer.id, raw.headers[TOKEN_HEADER]


def _events(store: Path) -> list[dict[str, Any]]:
    return [event for _, _, event in read_events(store)]


def _feedback(server: Any, **body: Any) -> Any:
    with server.client() as http:
        return http.post("/v1/feedback", json=body)


def test_feedback_reaches_any_replica_and_bad_tokens_record_nothing(replicas: Any) -> None:
    first, second, store = replicas
    request_id, token = _ask(first, "tiny-phi:code", "sort the list number 3")
    recorded = next(e for e in _events(store) if e["request_id"] == request_id)
    assert (recorded["kind"], recorded["adapter"], recorded["model_version"]) == ("response", "code", "7")
    assert recorded["prompt"] == "sort the list number 3"  # the user's words, not the chat template

    before = len(_events(store))
    version, payload, signature = token.split(".")
    forged = f"{version}.{payload}.{signature[::-1]}"
    expired = TokenSigner(SECRET.encode(), 1, clock=lambda: time.time() - 10).sign(request_id)
    refusals = [
        (_feedback(second, token=forged, outcome="accepted"), 400, "invalid_feedback_token"),
        (_feedback(second, token=expired, outcome="accepted"), 400, "feedback_token_expired"),
        (_feedback(second, request_id="chatcmpl-unknown", outcome="accepted"), 404, None),
        (_feedback(second, token=token, outcome="corrected"), 400, "missing_required_parameter"),
    ]
    for response, status, code in refusals:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]
        if code is not None:
            assert error["code"] == code
    assert len(_events(store)) == before  # nothing recorded for any of them

    # The other replica takes the verdict: it verifies the token, it never saw the request.
    accepted = _feedback(second, token=token, outcome="accepted")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["request_id"] == request_id
    for replica in (second, first):  # a replay fails on every replica: the claim is on the PVC
        replay = _feedback(replica, token=token, outcome="rejected")
        assert replay.status_code == 409 and replay.json()["error"]["code"] == "feedback_token_used"
    verdicts = [e for e in _events(store) if e["kind"] == "feedback" and e["request_id"] == request_id]
    assert [v["outcome"] for v in verdicts] == ["accepted"]


def test_a_streamed_answer_carries_its_token_and_is_recorded_whole(replicas: Any) -> None:
    first, _, store = replicas
    client = openai.OpenAI(base_url=f"{first.base_url}/v1", api_key=first.api_key, max_retries=0, timeout=30)
    with client.chat.completions.with_streaming_response.create(
        model="tiny-phi:creative", messages=[{"role": "user", "content": "print the word"}], max_tokens=6,
        temperature=0, stream=True,
    ) as response:  # fmt: skip
        token = response.headers[TOKEN_HEADER]
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    request_id = chunks[0].id
    recorded = next(e for e in _events(store) if e["request_id"] == request_id)
    assert recorded["completion"] == text and recorded["adapter"] == "creative"
    assert TokenSigner(SECRET.encode(), 60).verify(token).request_id == request_id


def test_an_ab_answer_rated_by_token_is_counted_for_its_variant(replicas: Any) -> None:
    first, second, _ = replicas
    request_id, token = _ask(first, "ab:code-adapter", "count the words", user="user-17")
    assert _feedback(second, token=token, outcome="rejected").status_code == 200
    summary = second.client().get("/v1/ab/summary").json()["experiments"]["code-adapter"]
    assert sum(v["negative"] for v in summary.values()) == 1


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(BIN / "dvc"), *args], cwd=repo, capture_output=True, text=True, timeout=600, env=env, check=False
    )


def _processed_outputs(repo: Path) -> list[str]:
    return [
        json.loads(line).get("output", "")
        for split in layout.SPLIT_NAMES
        for line in (repo / layout.PROCESSED_DIR / f"{split}_data.jsonl").read_text().splitlines()
    ]


def test_collected_feedback_is_a_data_version_and_repro_reruns_prepare_data_with_it(
    replicas: Any, make_repo_copy: Any, tmp_path: Path
) -> None:
    first, second, store = replicas
    repo = make_repo_copy("feedback-loop")
    # The whole corpus, unbalanced (a cap could drop the one new record by chance), and fast.
    params = yaml.safe_load((repo / layout.PARAMS_FILE).read_text())
    params["data"]["balance"]["strategy"] = "none"
    (repo / layout.PARAMS_FILE).write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@l", "commit", "-qam", "p"], cwd=repo, check=True
    )
    baseline = _dvc(repo, "repro", "prepare_data")  # the optional feedback source is absent: fine
    assert baseline.returncode == 0, baseline.stderr[-2000:]
    assert CORRECTION not in _processed_outputs(repo)

    request_id, token = _ask(first, "tiny-phi:analysis", QUESTION)
    assert _feedback(second, token=token, outcome="corrected", correction=CORRECTION).status_code == 200
    rejected_id, rejected_token = _ask(first, "tiny-phi:creative", "write about the table number 4")
    assert _feedback(second, token=rejected_token, outcome="rejected").status_code == 200

    path, collection = collect_feedback(store, repo / layout.FEEDBACK_RAW_DIR, DOMAINS)
    collected = {json.loads(line)["request_id"]: json.loads(line) for line in path.read_text().splitlines()}
    assert collected[request_id]["output"] == CORRECTION and rejected_id not in collected

    git = ["git", "-c", "user.name=ops", "-c", "user.email=ops@localhost"]
    subprocess.run([*git, "config", "user.name", "ops"], cwd=repo, check=True)
    subprocess.run([*git, "config", "user.email", "ops@localhost"], cwd=repo, check=True)
    data = snapshot_feedback(repo, layout.FEEDBACK_RAW_DIR, "feedback data")
    assert data.is_new and data.files == [path.relative_to(repo).as_posix()]
    status = json.loads(_dvc(repo, "status", "prepare_data", "--json").stdout)
    assert {"changed deps": {"data/raw": "modified"}} in status["prepare_data"]

    trail = AuditTrail(FileAuditStore(tmp_path / "audit.jsonl"))
    assert run_retrain([str(BIN / "dvc"), "repro", "prepare_data"], repo, trail, "new feedback", data) == 0
    assert CORRECTION in _processed_outputs(repo)  # prepare_data really ran, on the new data version
    assert json.loads(_dvc(repo, "status", "prepare_data", "--json").stdout) == {}
    started, finished = trail.entries()
    assert started.details["data_version"] == data.commit and finished.outcome == "ok"
    assert started.actor["git"] == "ops <ops@localhost>"
