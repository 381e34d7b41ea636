"""`relayrl model init-tiny`: a small random Qwen2 and a character-level tokenizer, built locally.

No downloads: the tokenizer is trained here with `tokenizers` on text from the shipped tasks (a
BPE whose vocabulary is exactly the alphabet plus special tokens, so every character is a token),
and the model is a randomly initialised Qwen2 with a head size of 64, which vLLM's CPU backend
accepts, so the same directory serves the transformers and the vLLM engines. Pad and EOS are
distinct tokens (the model must learn to stop); the R1 tags are single tokens. The alphabet is the
procedural tasks' (digits and `?+= `) or, with `model.tiny.alphabet: ascii`, printable ASCII with
tab and newline, so that the model can read SWE prompts and write diffs (`configs/swe-mini.yaml`).
"""

from __future__ import annotations

import string
from pathlib import Path

from relayrl.config import TinyModelConfig

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]


ASCII = string.printable.replace("\r", "").replace("\x0b", "").replace("\x0c", "")
"""The `ascii` alphabet: printable ASCII, tab and newline."""


def build_tokenizer(alphabet: str = "tasks"):
    """Train the character-level tokenizer over `alphabet` (tasks or ascii); returns a `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from relayrl.tasks import ALPHABET, corpus

    chars = list(ALPHABET)
    specials = [PAD, BOS, EOS, UNK, *TAGS]
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.decoder = decoders.Fuse()
    if alphabet == "ascii":
        # Byte-level symbols (space is "Ġ", newline "Ċ"), as Qwen2's tokenizer, which transformers
        # loads for this model type whatever the file says, pre-tokenizes: spaces and newlines survive.
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        chars = [byte_level.pre_tokenize_str(c)[0][0] for c in ASCII]
        tok.pre_tokenizer, tok.decoder = byte_level, decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=len(specials) + len(chars), special_tokens=specials,
                                  initial_alphabet=chars, show_progress=False)
    tok.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK,
                                   additional_special_tokens=TAGS)
    fast.padding_side = "left"
    return fast


def build_model(cfg: TinyModelConfig, tokenizer):
    """A random Qwen2 with tied embeddings shaped by `cfg`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if cfg.hidden_size % cfg.num_heads:
        raise ValueError("hidden_size must be a multiple of num_heads")
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads, head_dim=cfg.hidden_size // cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, torch_dtype="float32", use_sliding_window=False)
    torch.manual_seed(cfg.seed)
    return Qwen2ForCausalLM(config).float().eval()


def init_tiny(out: str | Path, cfg: TinyModelConfig | None = None) -> Path:
    """Build the tokenizer and model and save them as a Hugging Face directory."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    cfg = cfg or TinyModelConfig()
    out = Path(out)
    tokenizer = build_tokenizer(cfg.alphabet)
    model = build_model(cfg, tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    model.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
