"""Serving settings: defaults ← YAML file ← AISTUDIO_* environment; keys never from a file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from aistudio.errors import UserError
from aistudio.serving.auth import ENV_KEY_ROLES, key_id
from aistudio.serving.settings import CONFIG_ENV, load_settings

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("AISTUDIO_"):
            monkeypatch.delenv(key)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "serving.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["configs/serving.yaml", "k8s/base/serving.yaml"])
def test_the_committed_configs_are_valid(name: str) -> None:
    settings = load_settings(REPO / name)
    assert settings.scheduler.max_rows >= 1
    assert settings.scheduler.max_kv_tokens >= settings.generation.max_new_tokens
    assert settings.api_keys == []


def test_the_environment_overrides_the_file_key_by_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "scheduler:\n  max_rows: 4\n  prefill_chunk: 32\nqueue:\n  max_depth: 9\n")
    monkeypatch.setenv("AISTUDIO_SCHEDULER__MAX_ROWS", "16")
    monkeypatch.setenv("AISTUDIO_LIMITS__RATE_LIMIT__REQUESTS_PER_SECOND", "0")
    settings = load_settings(path)
    assert settings.scheduler.max_rows == 16  # environment
    assert settings.scheduler.prefill_chunk == 32  # file, same section
    assert settings.queue.max_depth == 9  # file
    assert settings.limits.rate_limit.requests_per_second == 0
    assert settings.generation.max_new_tokens == 512  # default


def test_the_config_path_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(_write(tmp_path, "queue:\n  max_depth: 3\n")))
    assert load_settings().queue.max_depth == 3


def test_api_keys_come_from_a_comma_list_and_a_key_file_with_roles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "keys"
    admin_digest = hashlib.sha256(b"file-key-0123456789abcdef").hexdigest()
    key_file.write_text(f"# id:roles:sha256\nops:inference,admin:{admin_digest}\n\n")
    monkeypatch.setenv("AISTUDIO_API_KEYS", "env-key-0123456789abcdef, env-key-fedcba9876543210")
    monkeypatch.setenv("AISTUDIO_API_KEY_FILE", str(key_file))
    settings = load_settings(_write(tmp_path, ""))
    keys = settings.all_api_keys()
    assert [k.id for k in keys] == [
        key_id("env-key-0123456789abcdef"),
        key_id("env-key-fedcba9876543210"),
        "ops",
    ]
    assert keys[0].roles == ENV_KEY_ROLES and "admin" not in keys[0].roles
    assert keys[2].roles == {"inference", "admin"}
    assert keys[2].sha256 == bytes.fromhex(admin_digest)
    assert "env-key" not in repr(settings)


def test_keys_in_the_config_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="api_keys must not be in a config file"):
        load_settings(_write(tmp_path, "api_keys: [abc]\n"))


def test_short_keys_and_a_missing_key_file_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AISTUDIO_API_KEYS", "short")
    with pytest.raises(UserError, match="shorter than 16"):
        load_settings(_write(tmp_path, "")).all_api_keys()
    monkeypatch.delenv("AISTUDIO_API_KEYS")
    monkeypatch.setenv("AISTUDIO_API_KEY_FILE", str(tmp_path / "absent"))
    with pytest.raises(UserError, match="not found"):
        load_settings(_write(tmp_path, "")).all_api_keys()


def test_every_problem_is_one_line_naming_the_key(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "scheduler:\n  max_rows: 0\n  colour: red\ngeneration:\n  default_max_tokens: 900\n"
    )
    with pytest.raises(UserError) as refused:
        load_settings(path)
    problems = refused.value.problems
    assert any("scheduler.max_rows must be >= 1" in p for p in problems)
    assert any("scheduler.colour is not a known key" in p for p in problems)
    assert any("default_max_tokens (900) must be <= max_new_tokens (512)" in p for p in problems)


def test_an_explicit_missing_config_is_an_error_but_the_default_may_be_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UserError, match="file not found"):
        load_settings(tmp_path / "absent.yaml")
    monkeypatch.chdir(tmp_path)
    assert load_settings().queue.max_depth == 64


def test_the_feedback_store_is_off_by_default_and_its_secret_comes_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(_write(tmp_path, "{}\n"))
    assert settings.feedback.record is False and settings.feedback_token_secret() is None
    (tmp_path / "secret").write_text("f" * 64 + "\n")
    from_file = load_settings(
        _write(tmp_path, f"feedback: {{record: true, secret_file: {tmp_path / 'secret'}}}\n")
    )
    assert from_file.feedback.record is True and from_file.feedback_token_secret() == b"f" * 64
    monkeypatch.setenv("AISTUDIO_FEEDBACK_SECRET", "e" * 40)
    assert load_settings(_write(tmp_path, "{}\n")).feedback_token_secret() == b"e" * 40


def test_a_feedback_secret_in_the_config_file_or_a_short_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UserError, match="feedback_secret must not be in a config file"):
        load_settings(_write(tmp_path, "feedback_secret: abc\n"))
    monkeypatch.setenv("AISTUDIO_FEEDBACK_SECRET", "short")
    with pytest.raises(UserError, match="AISTUDIO_FEEDBACK_SECRET.*openssl rand"):
        load_settings(_write(tmp_path, "{}\n")).feedback_token_secret()
