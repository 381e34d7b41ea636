"""Task prompts: reasoning-gym streams (reproducible, held-out apart) and chat rendering with a
system message and worked examples, as the learner puts them on the prompts stream."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import pytest
from pydantic import ValidationError

from relayrl.config import ChatExample, RunConfig, TaskConfig
from relayrl.tasks import render, stream

GYM = dict(name="reasoning_gym", dataset="basic_arithmetic",
           dataset_options={"min_terms": 2, "max_terms": 2, "max_digits": 2, "operators": ["+", "-"],
                            "allow_parentheses": False, "allow_negation": False})

# A ChatML template, as SmolLM2's: enough to see each turn land in its place.
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_reasoning_gym_stream_is_reproducible_and_held_out_differs():
    cfg = TaskConfig(**GYM)
    first = list(islice(stream(cfg), 50))
    assert first == list(islice(stream(cfg), 50))
    assert all(i.text.startswith("Calculate") and i.answer.lstrip("-").isdigit() for i in first)
    held_out = list(islice(stream(cfg, seed_offset=7_919), 50))
    assert [i.text for i in held_out] != [i.text for i in first]
    # the generator's options reach it: two terms, + and - only
    assert all(i.text.count("+") + i.text.count(" - ") == 1 for i in first)


def test_reasoning_gym_stream_goes_on_past_one_chunk(monkeypatch):
    import relayrl.tasks as tasks

    monkeypatch.setattr(tasks, "GYM_CHUNK", 5)
    items = list(islice(stream(TaskConfig(**GYM)), 12))
    assert len(items) == 12 and len({i.text for i in items}) > 5


def test_a_wrong_reasoning_gym_dataset_or_option_fails_when_the_stream_is_made():
    with pytest.raises(ValueError, match="no_such_option"):
        stream(TaskConfig(**{**GYM, "dataset_options": {"no_such_option": 1}}))
    with pytest.raises(ValueError, match="'nope'"):
        stream(TaskConfig(**{**GYM, "dataset": "nope"}))


def test_render_puts_system_examples_and_question_in_the_chat(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    tok.chat_template = CHATML
    cfg = TaskConfig(**GYM, chat=True, system="Use tags.",
                     examples=[ChatExample(question="Calculate 1 + 1.", response="<answer> 2 </answer>")])
    text = render("Calculate 3 + 4.", cfg, tok)
    assert text == ("<|im_start|>system\nUse tags.<|im_end|>\n<|im_start|>user\nCalculate 1 + 1.<|im_end|>\n"
                    "<|im_start|>assistant\n<answer> 2 </answer><|im_end|>\n<|im_start|>user\nCalculate 3 + 4.<|im_end|>\n"
                    "<|im_start|>assistant\n")
    assert render("3+4=", TaskConfig(), tok) == "3+4="  # no chat: the text as it is


def test_render_without_a_chat_template_says_so(tiny_model_dir):
    from transformers import AutoTokenizer

    with pytest.raises(ValueError, match="no chat template"):
        render("x", TaskConfig(chat=True), AutoTokenizer.from_pretrained(str(tiny_model_dir)))


def test_system_and_examples_need_chat():
    with pytest.raises(ValidationError, match="need task.chat"):
        TaskConfig(system="hello")
    with pytest.raises(ValidationError, match="need task.chat"):
        TaskConfig(examples=[{"question": "q", "response": "r"}])


def test_shipped_smollm2_config_validates():
    cfg = RunConfig.load(Path(__file__).resolve().parents[2] / "configs" / "smollm2.yaml")
    assert cfg.task.name == "reasoning_gym" and cfg.task.chat and cfg.model.path is not None
    assert next(stream(cfg.task)).text.startswith("Calculate")
