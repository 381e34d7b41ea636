"""Generated tasks: reasoning-gym streams (reproducible, held-out apart), the procedural tasks, and
chat rendering with a system message and worked examples, as the learner puts them on the
prompts stream; old task keys name their new place."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import pytest
from pydantic import ValidationError

from relayrl.config import ChatExample, ConfigError, RunConfig, TaskConfig
from relayrl.config.task import ReasoningGymSource
from relayrl.tasks import Row, render, stream

GYM = dict(source=ReasoningGymSource(
    dataset="basic_arithmetic", options={"min_terms": 2, "max_terms": 2, "max_digits": 2, "operators": ["+", "-"],
                                         "allow_parentheses": False, "allow_negation": False}))


def gym(**options) -> TaskConfig:
    return TaskConfig(source=ReasoningGymSource(**{**GYM["source"].model_dump(), **options}))

# A ChatML template, as SmolLM2's: enough to see each turn land in its place.
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_reasoning_gym_stream_is_reproducible_and_held_out_differs():
    cfg = TaskConfig(**GYM)
    first = list(islice(stream(cfg), 50))
    assert first == list(islice(stream(cfg), 50))
    assert all(i.prompt.startswith("Calculate") and i.answer.lstrip("-").isdigit() for i in first)
    held_out = list(islice(stream(cfg, "held_out"), 50))
    assert [i.prompt for i in held_out] != [i.prompt for i in first]
    # the generator's options reach it: two terms, + and - only
    assert all(i.prompt.count("+") + i.prompt.count(" - ") == 1 for i in first)


def test_reasoning_gym_stream_goes_on_past_one_chunk(monkeypatch):
    import relayrl.tasks.gym as gym_module

    monkeypatch.setattr(gym_module, "GYM_CHUNK", 5)
    items = list(islice(stream(TaskConfig(**GYM)), 12))
    assert len(items) == 12 and len({i.prompt for i in items}) > 5


def test_a_wrong_reasoning_gym_dataset_or_option_fails_when_the_stream_is_made():
    with pytest.raises(ValueError, match="no_such_option"):
        stream(gym(options={"no_such_option": 1}))
    with pytest.raises(ValueError, match="'nope'"):
        stream(gym(dataset="nope"))


def test_render_puts_system_examples_and_question_in_the_chat(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    tok.chat_template = CHATML
    cfg = TaskConfig(**GYM, chat=True, system="Use tags.",
                     examples=[ChatExample(question="Calculate 1 + 1.", response="<answer> 2 </answer>")])
    text = render(Row("math", "Calculate 3 + 4.", answer="7"), cfg, tok).text
    assert text == ("<|im_start|>system\nUse tags.<|im_end|>\n<|im_start|>user\nCalculate 1 + 1.<|im_end|>\n"
                    "<|im_start|>assistant\n<answer> 2 </answer><|im_end|>\n<|im_start|>user\nCalculate 3 + 4.<|im_end|>\n"
                    "<|im_start|>assistant\n")
    assert render(Row("math", "3+4=", answer="7"), TaskConfig(), tok).text == "3+4="  # no chat: the text as it is


def test_render_without_a_chat_template_says_so(tiny_model_dir):
    from transformers import AutoTokenizer

    with pytest.raises(ValueError, match="no chat template"):
        render(Row("math", "x", answer="1"), TaskConfig(chat=True), AutoTokenizer.from_pretrained(str(tiny_model_dir)))


def test_system_and_examples_need_chat():
    with pytest.raises(ValidationError, match="need task.chat"):
        TaskConfig(system="hello")
    with pytest.raises(ValidationError, match="need task.chat"):
        TaskConfig(examples=[{"question": "q", "response": "r"}])


def test_shipped_smollm2_config_validates():
    cfg = RunConfig.load(Path(__file__).resolve().parents[3] / "configs" / "smollm2.yaml")
    assert cfg.task.source.type == "reasoning_gym" and cfg.task.chat and cfg.model.path is not None
    assert next(stream(cfg.task)).prompt.startswith("Calculate")


def test_the_procedural_tasks_are_reproducible_and_the_quickstart_stream_is_unchanged():
    from relayrl.config.task import ProceduralSource

    first = [r.prompt for r in islice(stream(TaskConfig()), 3)]
    assert first == ["66048?", "76475?", "92411?"]  # the quickstart's prompts before task.source existed
    add = list(islice(stream(TaskConfig(source=ProceduralSource(name="add_digits"), seed=3)), 20))
    assert all(int(r.prompt[0]) + int(r.prompt[2]) == int(r.answer) for r in add)
    code = list(islice(stream(TaskConfig(source=ProceduralSource(name="print_value"))), 20))
    assert {r.kind for r in code} == {"code"}
    assert all(r.tests["cases"][0]["stdout"] == r.prompt.rstrip("=") for r in code)


def test_old_task_keys_name_their_new_place(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("task:\n  name: reasoning_gym\n  dataset: chain_sum\n  dataset_options: {max_terms: 2}\n"
                    "  num_digits: 4\n")
    with pytest.raises(ConfigError) as err:
        RunConfig.load(path)
    lines = str(err.value).splitlines()
    assert len(lines) == 4
    assert any("task.name: this key moved to task.source.name" in line for line in lines)
    assert any("task.dataset_options: this key moved to task.source.options" in line for line in lines)
