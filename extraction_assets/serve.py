"""Start, stop and inspect a local vLLM OpenAI-compatible server.

CPU machines (no `nvidia-smi -L`) serve the embedded SmolLM2-135M-Instruct with the CPU build of
vLLM; GPU machines serve the production model with production-like flags. One state directory
holds one server: `vllm.pid`, `vllm.log` and `server.json` (url, port, model).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from extraction_assets.errors import ServerError
from extraction_assets.model_cache import MODEL_NAME, is_prepared, model_cache_dir, prepare_model
from extraction_assets.settings import DEFAULT_MAX_MODEL_LEN, Settings

GPU_DEFAULT_MODEL = "Qwen/Qwen2.5-14B-Instruct-AWQ"
LOG_TAIL_LINES = 30
COMPACT_JSON_CONFIG = {"backend": "xgrammar", "disable_any_whitespace": True}


def default_state_dir() -> Path:
    """$EXTRACTION_HOME/server (absolute: any working directory finds the server)."""
    return Settings.from_env().server_dir


def gpu_available() -> bool:
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class ServerConfig:
    """Everything that decides the server command line; None means "the mode's default"."""

    host: str = "127.0.0.1"
    port: int = 8000
    gpu: bool | None = None  # None: detect with nvidia-smi
    model: str | None = None  # path or HF id; else EXTRACTION_VLLM_MODEL; else the mode's default
    served_model_name: str | None = None  # CPU: smollm2-135m-instruct; GPU: the model id
    max_model_len: int = DEFAULT_MAX_MODEL_LEN
    max_num_seqs: int | None = None
    kv_cache_gib: int = 2  # CPU only (VLLM_CPU_KVCACHE_SPACE, whole GiB)
    quantization: str | None = None  # GPU default: awq
    gpu_memory_utilization: float = 0.90
    # Compact JSON under structured outputs (server-wide in vLLM 0.32: the per-request
    # `disable_any_whitespace` is accepted but ignored). Default: on for CPU, off for GPU.
    compact_json: bool | None = None
    extra_args: list[str] = field(default_factory=list)  # plus env EXTRACTION_VLLM_ARGS
    ready_timeout: float = 300.0
    state_dir: Path | None = None
    python: str = sys.executable

    def resolved(self) -> ServerConfig:
        """A copy with every default filled in (mode detected, model chosen)."""
        settings = Settings.from_env()
        gpu = gpu_available() if self.gpu is None else self.gpu
        model = (
            self.model
            or settings.vllm_model
            or (GPU_DEFAULT_MODEL if gpu else str(model_cache_dir(settings)))
        )
        served = self.served_model_name or (model if gpu else MODEL_NAME)
        quant = self.quantization if self.quantization is not None else ("awq" if gpu else None)
        return ServerConfig(
            **{
                **asdict(self),
                "gpu": gpu,
                "model": model,
                "served_model_name": served,
                "quantization": quant or None,
                "compact_json": (not gpu) if self.compact_json is None else self.compact_json,
                "extra_args": [*self.extra_args, *settings.vllm_args],
                "state_dir": Path(self.state_dir or settings.server_dir).expanduser().resolve(),
            }
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"


def build_command(config: ServerConfig) -> list[str]:
    """The server command line for a resolved config."""
    c = config
    assert c.gpu is not None and c.model, "call config.resolved() first"
    if c.gpu:
        # `vllm serve MODEL`, via the module so the venv's vLLM is used whatever PATH says.
        cmd = [c.python, "-m", "vllm.entrypoints.cli.main", "serve", c.model]
    else:
        # The vllm-cpu distribution's `vllm` script does not start; the module does.
        cmd = [c.python, "-m", "vllm.entrypoints.openai.api_server", "--model", c.model]
    cmd += [
        "--host",
        c.host,
        "--port",
        str(c.port),
        "--served-model-name",
        str(c.served_model_name),
    ]
    cmd += ["--max-model-len", str(c.max_model_len)]
    if c.max_num_seqs:
        cmd += ["--max-num-seqs", str(c.max_num_seqs)]
    if c.gpu:
        if c.quantization:
            cmd += ["--quantization", c.quantization]
        cmd += ["--gpu-memory-utilization", str(c.gpu_memory_utilization)]
    else:
        # bfloat16 is what the model was converted to; eager skips ~2 min of graph compilation.
        cmd += ["--dtype", "bfloat16", "--enforce-eager"]
    if c.compact_json and "--structured-outputs-config" not in c.extra_args:
        # ~20% fewer tokens per answer, and no runaway whitespace from a small model.
        cmd += ["--structured-outputs-config", json.dumps(COMPACT_JSON_CONFIG)]
    return cmd + list(c.extra_args)


def build_env(config: ServerConfig, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    if not config.gpu:
        env["HF_HUB_OFFLINE"] = "1"
        env["VLLM_CPU_KVCACHE_SPACE"] = str(config.kv_cache_gib)  # unset: grabs 92% of memory
        env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
        env["VLLM_USE_V2_MODEL_RUNNER"] = "0"  # structured outputs crash on CPU with V2
    return env


# --- failures ---------------------------------------------------------------------------------


# Ordered: the first matching reason wins (an import error can mention memory, not the reverse).
_REASONS: list[tuple[str, tuple[str, ...]]] = [
    ("port in use", ("address already in use", "errno 98")),
    ("package missing", ("modulenotfounderror", "no module named", "importerror")),
    (
        "model missing",
        (
            "is not a local folder",
            "does not appear to have a file named",
            "repo id must be",
            "hfvalidationerror",
            "localentrynotfounderror",
            "no such file or directory",
            "repository not found",
        ),
    ),
    (
        "not enough memory / KV cache",
        (
            "out of memory",
            "outofmemory",
            "cannot allocate memory",
            "memoryerror",
            "kv cache",
            "no available memory for the cache blocks",
            "insufficient memory",
        ),
    ),
]


def classify_failure(log_text: str, returncode: int | None = None) -> str:
    """A short reason for a dead server, from its log (and exit code)."""
    lower = log_text.lower()
    for reason, needles in _REASONS:
        if any(n in lower for n in needles):
            return reason
    if returncode == -signal.SIGKILL:
        return "not enough memory / KV cache (killed by SIGKILL, likely the OOM killer)"
    return "unknown"


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- processes and ports ----------------------------------------------------------------------


def port_in_use(host: str, port: int) -> bool:
    # SO_REUSEADDR as uvicorn does: a TIME_WAIT leftover is not "in use", a listener is.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


_children: dict[int, subprocess.Popen] = {}  # servers started by this process, to reap them


def pid_alive(pid: int) -> bool:
    proc = _children.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie is dead; a reused pid is not our server
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        if b"vllm" not in Path(f"/proc/{pid}/cmdline").read_bytes().lower():
            return False
    return True


def list_models(url: str, timeout: float = 2.0) -> list[str] | None:
    """Model ids served at `url` (".../v1"), or None if nothing answers like an OpenAI server."""
    try:
        r = httpx.get(f"{url.rstrip('/')}/models", timeout=timeout, trust_env=False)
        r.raise_for_status()
        return [m["id"] for m in r.json().get("data", [])]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


# --- state ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerHandle:
    url: str  # base URL, ".../v1"
    pid: int
    log_path: Path
    model: str = MODEL_NAME  # served model name
    state_dir: Path | None = None


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    ready: bool = False
    url: str | None = None
    pid: int | None = None
    model: str | None = None
    log_path: Path | None = None


def _state_paths(state_dir: Path) -> tuple[Path, Path, Path]:
    return state_dir / "server.json", state_dir / "vllm.pid", state_dir / "vllm.log"


def _read_state(state_dir: Path) -> dict | None:
    info_path, pid_path, _ = _state_paths(state_dir)
    try:
        info = json.loads(info_path.read_text())
        info["pid"] = int(pid_path.read_text().strip())
        return info
    except (OSError, ValueError):
        return None


def _clear_state(state_dir: Path) -> None:
    info_path, pid_path, _ = _state_paths(state_dir)
    info_path.unlink(missing_ok=True)
    pid_path.unlink(missing_ok=True)


def server_status(state_dir: Path | None = None) -> ServerStatus:
    state_dir = Path(state_dir or default_state_dir()).expanduser()
    info = _read_state(state_dir)
    if info is None or not pid_alive(info["pid"]):
        return ServerStatus(running=False)
    ready = list_models(info["url"]) is not None
    return ServerStatus(
        True, ready, info["url"], info["pid"], info["served_model_name"], Path(info["log_path"])
    )


# --- start / wait / stop ----------------------------------------------------------------------


def wait_until_ready(
    url: str, timeout: float, pid: int | None = None, log_path: Path | None = None
) -> None:
    """Poll GET {url}/models until it answers; fail fast if `pid` dies; never past `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        if list_models(url) is not None:
            return
        if pid is not None and not pid_alive(pid):
            proc = _children.get(pid)
            rc = proc.returncode if proc is not None else None
            log = tail(log_path) if log_path else ""
            reason = classify_failure(log, rc)
            raise ServerError(
                f"vLLM server exited (code {rc}) before answering: {reason}.\n"
                f"Last {LOG_TAIL_LINES} lines of {log_path}:\n{log}"
            )
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no answer from {url}/models within {timeout:.0f} s")
        time.sleep(1.0)


def start_server(config: ServerConfig | None = None) -> ServerHandle:
    """Start a server detached (it outlives this process) and wait until it answers."""
    c = (config or ServerConfig()).resolved()
    assert c.state_dir is not None
    info_path, pid_path, log_path = _state_paths(c.state_dir)

    status = server_status(c.state_dir)
    if status.running:
        if status.url == c.url:
            return ServerHandle(c.url, status.pid or 0, log_path, status.model or "", c.state_dir)
        raise ServerError(
            f"this state dir already runs a server at {status.url} (pid {status.pid})"
        )
    _clear_state(c.state_dir)
    if port_in_use(c.host, c.port):
        models = list_models(c.url)
        what = (
            f"an OpenAI-compatible server serving {models} (not started from {c.state_dir})"
            if models is not None
            else "another program"
        )
        raise ServerError(f"port {c.host}:{c.port} is in use by {what}; choose another --port")
    try:
        import vllm  # noqa: F401  # only to fail clearly before launching
    except ImportError as exc:
        raise ServerError(f"package missing: {exc.name} (run `make setup`)") from exc
    if not c.gpu and c.model == str(model_cache_dir()) and not is_prepared(Path(c.model)):
        prepare_model(Path(c.model))

    c.state_dir.mkdir(parents=True, exist_ok=True)
    cmd = build_command(c)
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.ctime()} {shlex.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=build_env(c),
            cwd=c.state_dir,
            start_new_session=True,  # its own process group: stop kills workers too
        )
    _children[proc.pid] = proc
    pid_path.write_text(f"{proc.pid}\n")
    info = {
        "url": c.url,
        "host": c.host,
        "port": c.port,
        "model": c.model,
        "served_model_name": c.served_model_name,
        "gpu": c.gpu,
        "log_path": str(log_path),
        "started_at": time.time(),
        "command": cmd,
    }
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    try:
        wait_until_ready(c.url, c.ready_timeout, proc.pid, log_path)
    except TimeoutError as exc:
        _terminate(proc.pid)
        _clear_state(c.state_dir)
        raise ServerError(
            f"{exc}; killed the server (pid {proc.pid}).\n"
            f"Last {LOG_TAIL_LINES} lines of {log_path}:\n{tail(log_path)}"
        ) from None
    except ServerError:
        _clear_state(c.state_dir)
        raise
    return ServerHandle(c.url, proc.pid, log_path, str(c.served_model_name), c.state_dir)


def _terminate(pid: int, grace_s: float = 30.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after `grace_s`."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not pid_alive(pid) and not _group_alive(pid):
                _children.pop(pid, None)
                return
            time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_server(state_dir: Path | None = None) -> bool:
    """Stop the server of `state_dir`; False if none was running."""
    state_dir = Path(state_dir or default_state_dir()).expanduser()
    info = _read_state(state_dir)
    if info is None:
        return False
    running = pid_alive(info["pid"]) or _group_alive(info["pid"])
    if running:
        _terminate(info["pid"])
    _clear_state(state_dir)
    return running
