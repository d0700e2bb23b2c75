"""`extraction serve start|stop|status` and `extraction model prepare`: the local vLLM server."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from extraction_assets import model_cache, serve
from extraction_assets.errors import ModelUnavailable, ServerError


def _serve_config(args: argparse.Namespace) -> serve.ServerConfig:
    return serve.ServerConfig(
        host=args.host,
        port=args.port,
        gpu=args.gpu,
        model=args.model,
        served_model_name=args.served_model_name,
        max_model_len=args.max_model_len,
        max_num_seqs=args.max_num_seqs,
        kv_cache_gib=args.kv_cache_gib,
        quantization=args.quantization,
        gpu_memory_utilization=args.gpu_memory_utilization,
        compact_json=args.compact_json,
        extra_args=shlex.split(args.extra_args or ""),
        ready_timeout=args.ready_timeout,
        state_dir=args.state_dir,
    )


def cmd_serve_start(args: argparse.Namespace) -> int:
    config = _serve_config(args)
    if args.print_command:
        print(shlex.join(serve.build_command(config.resolved())))
        return 0
    status = serve.server_status(args.state_dir)
    if status.running:
        ready = "ready" if status.ready else "starting, not answering yet"
        print(f"already running ({ready}): {status.url} pid={status.pid} model={status.model}")
        return 0 if status.url == config.url else 1
    t0 = time.monotonic()
    try:
        handle = serve.start_server(config)
    except ServerError as exc:  # ModelUnavailable is one
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"ready in {time.monotonic() - t0:.0f} s: {handle.url} pid={handle.pid} "
        f"model={handle.model} log={handle.log_path}"
    )
    return 0


def cmd_serve_stop(args: argparse.Namespace) -> int:
    print("stopped" if serve.stop_server(args.state_dir) else "not running")
    return 0


def cmd_serve_status(args: argparse.Namespace) -> int:
    s = serve.server_status(args.state_dir)
    if not s.running:
        print("stopped")
        return 1
    ready = "ready" if s.ready else "not answering yet"
    print(f"running ({ready}): {s.url} pid={s.pid} model={s.model} log={s.log_path}")
    return 0


def cmd_model_prepare(args: argparse.Namespace) -> int:
    dest = args.dest or model_cache.model_cache_dir()
    if model_cache.is_prepared(dest) and not args.force:
        print(f"model ready: {dest}")
        return 0
    t0 = time.monotonic()
    try:
        path = model_cache.prepare_model(dest, force=args.force)
    except ModelUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"model converted in {time.monotonic() - t0:.0f} s: {path}")
    return 0


def add_commands(sub: Any) -> None:
    """The ``serve`` and ``model`` sub-commands on the top-level parser's subparsers."""
    serve_p = sub.add_parser(
        "serve",
        help="start, stop or check the local vLLM server",
        description="The local vLLM server: the embedded SmolLM2 model on CPU, or a GPU model. "
        "A server already running anywhere needs none of this: set LLM_BASE_URL.",
    )
    serve_sub = serve_p.add_subparsers(dest="action", required=True, metavar="ACTION")
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="holds vllm.pid, vllm.log, server.json (default $EXTRACTION_HOME/server; "
        "EXTRACTION_HOME defaults to .extraction/ in the checkout)",
    )
    start = serve_sub.add_parser("start", parents=[state], help="start and wait until ready")
    d = serve.ServerConfig()
    start.add_argument("--host", default=d.host)
    start.add_argument("--port", type=int, default=d.port)
    mode = start.add_mutually_exclusive_group()
    mode.add_argument("--gpu", dest="gpu", action="store_true", default=None, help="force GPU mode")
    mode.add_argument("--cpu", dest="gpu", action="store_false", help="force CPU mode")
    start.add_argument(
        "--model",
        default=None,
        help="path or HF id (env EXTRACTION_VLLM_MODEL; default: embedded SmolLM2 on CPU, "
        f"{serve.GPU_DEFAULT_MODEL} on GPU)",
    )
    start.add_argument(
        "--served-model-name", default=None, help=f"default {model_cache.MODEL_NAME} on CPU"
    )
    start.add_argument("--max-model-len", type=int, default=d.max_model_len)
    start.add_argument("--max-num-seqs", type=int, default=None)
    start.add_argument("--kv-cache-gib", type=int, default=d.kv_cache_gib, help="CPU only")
    start.add_argument("--quantization", default=None, help="GPU default: awq")
    start.add_argument("--gpu-memory-utilization", type=float, default=d.gpu_memory_utilization)
    start.add_argument(
        "--compact-json",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="structured outputs without optional whitespace (default: on for CPU, off for GPU)",
    )
    start.add_argument(
        "--extra-args",
        default="",
        help="more vLLM flags, one string (also env EXTRACTION_VLLM_ARGS)",
    )
    start.add_argument("--ready-timeout", type=float, default=d.ready_timeout)
    start.add_argument("--print-command", action="store_true", help="print the command, do not run")
    start.set_defaults(func=cmd_serve_start)
    serve_sub.add_parser("stop", parents=[state], help="stop it").set_defaults(func=cmd_serve_stop)
    serve_sub.add_parser("status", parents=[state], help="is it running?").set_defaults(
        func=cmd_serve_status
    )

    model_p = sub.add_parser("model", help="prepare the embedded SmolLM2 model")
    model_sub = model_p.add_subparsers(dest="action", required=True, metavar="ACTION")
    prep = model_sub.add_parser("prepare", help="convert the embedded GGUF into the cache")
    prep.add_argument(
        "--dest",
        type=Path,
        default=None,
        help="default $EXTRACTION_MODEL_CACHE, else ~/.cache/extraction-assets/models/"
        + model_cache.MODEL_NAME,
    )
    prep.add_argument("--force", action="store_true")
    prep.set_defaults(func=cmd_model_prepare)
