"""The local vLLM server command: its command lines (CPU and GPU), the refusals that must come
before anything is launched, failure classification, and one real round trip with a schema-
constrained answer keyed by item ids (the shape the engine relies on)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import jsonschema
import pytest

from extraction_assets import serve
from extraction_assets.__main__ import main as cli_main
from extraction_assets.errors import ServerError


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXTRACTION_VLLM_MODEL", raising=False)
    monkeypatch.delenv("EXTRACTION_VLLM_ARGS", raising=False)


def _flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_cpu_command_serves_the_embedded_model(monkeypatch, tmp_path):
    monkeypatch.setenv("EXTRACTION_MODEL_CACHE", str(tmp_path / "model"))
    config = serve.ServerConfig(gpu=False, port=8123, max_num_seqs=4).resolved()
    cmd = serve.build_command(config)
    assert cmd[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert _flag(cmd, "--model") == str(tmp_path / "model")
    assert _flag(cmd, "--port") == "8123"
    assert _flag(cmd, "--served-model-name") == "smollm2-135m-instruct"
    assert _flag(cmd, "--max-num-seqs") == "4"
    assert _flag(cmd, "--dtype") == "bfloat16"
    assert "--enforce-eager" in cmd
    assert "--quantization" not in cmd and "--gpu-memory-utilization" not in cmd
    assert json.loads(_flag(cmd, "--structured-outputs-config")) == {
        "backend": "xgrammar",
        "disable_any_whitespace": True,
    }
    env = serve.build_env(config, base={})
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert env["VLLM_USE_V2_MODEL_RUNNER"] == "0"
    assert env["HF_HUB_OFFLINE"] == "1"


def test_gpu_command_mirrors_production():
    cmd = serve.build_command(serve.ServerConfig(gpu=True).resolved())
    assert cmd[1:5] == ["-m", "vllm.entrypoints.cli.main", "serve", "Qwen/Qwen2.5-14B-Instruct-AWQ"]
    assert _flag(cmd, "--quantization") == "awq"
    assert _flag(cmd, "--max-model-len") == "8192"
    assert _flag(cmd, "--gpu-memory-utilization") == "0.9"
    assert _flag(cmd, "--served-model-name") == "Qwen/Qwen2.5-14B-Instruct-AWQ"
    assert "--enforce-eager" not in cmd
    assert "--structured-outputs-config" not in cmd  # production does not set it
    assert "VLLM_CPU_KVCACHE_SPACE" not in serve.build_env(serve.ServerConfig(gpu=True), base={})


def test_gpu_command_takes_model_and_passthrough_flags_from_env(monkeypatch):
    monkeypatch.setenv("EXTRACTION_VLLM_MODEL", "Qwen/Qwen2.5-7B-Instruct")
    monkeypatch.setenv("EXTRACTION_VLLM_ARGS", "--enable-prefix-caching --seed 7")
    config = serve.ServerConfig(
        gpu=True,
        quantization="",
        gpu_memory_utilization=0.5,
        extra_args=["--tensor-parallel-size", "2"],
    ).resolved()
    cmd = serve.build_command(config)
    assert cmd[4] == "Qwen/Qwen2.5-7B-Instruct"
    assert "--quantization" not in cmd
    assert _flag(cmd, "--gpu-memory-utilization") == "0.5"
    assert cmd[-5:] == ["--tensor-parallel-size", "2", "--enable-prefix-caching", "--seed", "7"]


def test_explicit_structured_outputs_config_wins_over_compact_json():
    mine = ["--structured-outputs-config", '{"backend": "guidance"}']
    cmd = serve.build_command(serve.ServerConfig(gpu=False, extra_args=mine).resolved())
    assert cmd.count("--structured-outputs-config") == 1 and cmd[-2:] == mine
    cmd = serve.build_command(serve.ServerConfig(gpu=False, compact_json=False).resolved())
    assert "--structured-outputs-config" not in cmd


def test_cli_prints_the_command_without_starting(tmp_path, capsys):
    rc = cli_main(
        ["serve", "start", "--cpu", "--port", "8124", "--state-dir", str(tmp_path),
         "--extra-args", "--seed 3", "--print-command"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "--port 8124" in out and out.rstrip().endswith("--seed 3")
    assert not (tmp_path / "vllm.pid").exists()


def test_start_refuses_a_port_in_use_before_launching(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert serve.port_in_use("127.0.0.1", port)
        config = serve.ServerConfig(gpu=False, port=port, state_dir=tmp_path, ready_timeout=5)
        with pytest.raises(ServerError, match=rf"port 127\.0\.0\.1:{port} is in use by another"):
            serve.start_server(config)
    assert not (tmp_path / "vllm.pid").exists() and not (tmp_path / "vllm.log").exists()
    assert not serve.port_in_use("127.0.0.1", port)


def test_status_and_stop_without_a_server(tmp_path):
    assert serve.server_status(tmp_path).running is False
    assert serve.stop_server(tmp_path) is False


def test_stale_pid_file_is_not_a_running_server(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that certainly belonged to something else and is gone now
    (tmp_path / "vllm.pid").write_text(f"{proc.pid}\n")
    (tmp_path / "server.json").write_text(json.dumps({"url": "http://127.0.0.1:1/v1"}))
    assert serve.server_status(tmp_path).running is False


@pytest.mark.parametrize(
    ("log", "reason"),
    [
        ("OSError: [Errno 98] error while attempting to bind on address: address already in use",
         "port in use"),
        ("ModuleNotFoundError: No module named 'vllm'", "package missing"),
        ("huggingface_hub.errors.HFValidationError: Repo id must be in the form", "model missing"),
        ("OSError: /nope does not appear to have a file named config.json", "model missing"),
        ("ValueError: No available memory for the cache blocks. Try increasing "
         "`VLLM_CPU_KVCACHE_SPACE`", "not enough memory / KV cache"),
        ("ValueError: To serve at least one request with max seq len (8192), 1.5 GiB KV cache "
         "is needed, which is larger than the available KV cache memory", 
         "not enough memory / KV cache"),
        ("RuntimeError: something nobody anticipated", "unknown"),
    ],
)  # fmt: skip
def test_classify_failure(log, reason):
    assert serve.classify_failure("INFO starting\n" + log) == reason


def test_a_sigkilled_server_is_classified_as_memory():
    assert serve.classify_failure("INFO loading weights", returncode=-9).startswith(
        "not enough memory"
    )


def test_wait_until_ready_reports_a_dead_process_with_its_log(tmp_path):
    log = tmp_path / "vllm.log"
    log.write_text("INFO starting\nModuleNotFoundError: No module named 'vllm._C'\n")
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    serve._children[proc.pid] = proc
    url = f"http://127.0.0.1:{serve.free_port()}/v1"
    with pytest.raises(ServerError, match="package missing") as info:
        serve.wait_until_ready(url, timeout=30, pid=proc.pid, log_path=log)
    assert "No module named 'vllm._C'" in str(info.value)


def test_wait_until_ready_never_hangs_past_its_timeout():
    url = f"http://127.0.0.1:{serve.free_port()}/v1"
    with pytest.raises(TimeoutError):
        serve.wait_until_ready(url, timeout=1.5)


# --- the real server ---------------------------------------------------------------------------

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "death_year": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    },
    "required": ["name", "death_year"],
    "additionalProperties": False,
}
KEYED_BY_ITEM = {
    "type": "object",
    "properties": {"a1": PERSON, "b2": PERSON},
    "required": ["a1", "b2"],
    "additionalProperties": False,
}


@pytest.mark.vllm
def test_server_lists_the_model_and_answers_in_the_keyed_schema(vllm_url: str, vllm_model: str):
    models = httpx.get(f"{vllm_url}/models", timeout=10, trust_env=False).json()
    assert vllm_model in [m["id"] for m in models["data"]]

    body = {
        "model": vllm_model,
        "messages": [
            {"role": "system", "content": "Extract the person of each item. Answer in JSON."},
            {
                "role": "user",
                "content": "a1: Ada Lovelace died in 1852.\nb2: Alan Turing (1912-1954).",
            },
        ],
        "max_tokens": 120,
        "temperature": 0,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "people", "schema": KEYED_BY_ITEM, "strict": True},
        },
    }
    r = httpx.post(f"{vllm_url}/chat/completions", json=body, timeout=120, trust_env=False)
    r.raise_for_status()
    answer = r.json()["choices"][0]["message"]["content"]
    jsonschema.validate(json.loads(answer), KEYED_BY_ITEM)


def test_model_cache_default_is_outside_the_repository(monkeypatch):
    from extraction_assets.model_cache import model_cache_dir

    monkeypatch.delenv("EXTRACTION_MODEL_CACHE", raising=False)
    repo = Path(__file__).resolve().parents[1]
    assert repo not in model_cache_dir().parents
