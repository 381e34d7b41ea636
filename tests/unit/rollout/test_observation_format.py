"""How observations and tools meet a chat template: the tool turn is the template's own text around
the observation (its end-of-turn left out after a turn that ended with EOS), a template without a
tool role gets a user turn, and a template that renders `tools` describes them in the prompt."""

import json

from transformers import AutoTokenizer

from relayrl.config import AgentConfig, TaskConfig
from relayrl.rollout.tools import PLAIN, ObservationFormat
from relayrl.tasks.render import chat_wrap, takes_tools
from relayrl.tasks.row import Row

CHATML = ("{% if tools %}<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n{% endif %}"
          "{% for m in messages %}{% if m.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m.content }}\n"
          "</tool_response><eos>\n{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<eos>\n{% endif %}{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
NO_TOOL_ROLE = ("{% for m in messages %}{% if m.role not in ['user', 'assistant', 'system'] %}"
                "{{ raise_exception('unknown role') }}{% endif %}[{{ m.role }}] {{ m.content }}<eos>{% endfor %}"
                "{% if add_generation_prompt %}[assistant] {% endif %}")


def tokenizer(tiny_model_dir, template):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = template
    return tok


def test_plain_wrapping_without_chat(tiny_model_dir):
    fmt = ObservationFormat(tokenizer(tiny_model_dir, CHATML), chat=False)
    assert fmt.wrap("exit code 0\n", after_eos=True) == PLAIN[0] + "exit code 0\n" + PLAIN[1]


def test_the_templates_tool_turn_and_its_end_of_turn(tiny_model_dir):
    fmt = ObservationFormat(tokenizer(tiny_model_dir, CHATML), chat=True)
    tail = "OBS\n</tool_response><eos>\n<|im_start|>assistant\n"
    assert fmt.wrap("OBS", after_eos=False) == "<eos>\n<|im_start|>user\n<tool_response>\n" + tail
    assert fmt.wrap("OBS", after_eos=True) == "\n<|im_start|>user\n<tool_response>\n" + tail


def test_a_template_without_a_tool_role_gets_a_user_turn(tiny_model_dir):
    fmt = ObservationFormat(tokenizer(tiny_model_dir, NO_TOOL_ROLE), chat=True)
    assert fmt.wrap("OBS", after_eos=True) == "[user] <tool_response>\nOBS\n</tool_response><eos>[assistant] "


def test_a_template_that_takes_tools_describes_them(tiny_model_dir, tmp_path):
    from relayrl.tasks.render import prompt_text

    tok = tokenizer(tiny_model_dir, CHATML)
    assert takes_tools(tok) and not takes_tools(tokenizer(tiny_model_dir, NO_TOOL_ROLE))
    task = tmp_path / "t"
    (task / "repo" / "tests").mkdir(parents=True)
    (task / "repo" / "tests" / "test_a.py").write_text("def test_a():\n    pass\n")
    (task / "task.json").write_text(json.dumps({"problem_statement": "Fix it.", "fail_to_pass": ["tests/test_a.py::test_a"],
                                                "test_files": ["tests/test_a.py"]}))
    row = Row(kind="swe", prompt=None, task=task)
    agent = AgentConfig(tools=["bash", "submit"])
    chat = prompt_text(row, TaskConfig(chat=True, agent=agent, swe={"files": "none"}), tok)
    assert chat.startswith("<|im_start|>system\nTools: ") and '"name": "bash"' in chat and "Call exactly one" not in chat
    plain = prompt_text(row, TaskConfig(agent=agent, swe={"files": "none"}), None)
    assert "Fix it." in plain and "Call exactly one tool per reply" in plain and "- bash" in plain
    assert chat_wrap(tok, [{"role": "user", "content": "x"}]) == "<|im_start|>user\nx<eos>\n<|im_start|>assistant\n"
