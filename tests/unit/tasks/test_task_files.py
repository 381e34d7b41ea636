"""Task sources from files: each built-in layout (relayrl JSONL, verl Parquet, TRL JSONL and
Parquet) loads into training prompts through the one `render`; the field map, held-out splits,
shuffling and epochs; and every malformed file or row is a one-line error naming the file, the
row and the field, raised when the rows are loaded (the learner loads them when a run starts)."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from relayrl.config import ConfigError, RunConfig, TaskConfig
from relayrl.config.task import FileSource
from relayrl.tasks import DataError, Tasks, render

ROOT = Path(__file__).resolve().parents[3]
SWE_MINI = ROOT / "examples" / "swe-mini"
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
STDIO = {"kind": "stdio", "cases": [{"stdin": "2\n", "stdout": "4"}]}


class ChatTokenizer:
    """The one thing render asks of a tokenizer: a chat template (transformers' own engine renders it)."""

    def __init__(self, tiny_model_dir):
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
        self.tok.chat_template = CHATML


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def tasks(path: Path, **source) -> Tasks:
    return Tasks(TaskConfig(source=FileSource(path=path, **source)))


def test_relayrl_jsonl_mixes_math_code_and_swe_rows_into_training_prompts(tmp_path, tiny_model_dir):
    (tmp_path / "swe").symlink_to(SWE_MINI)
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        {"kind": "math", "prompt": "What is 2+3?", "answer": 5, "id": "m1"},
        {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+1?"}], "answer": "2"},
        {"kind": "code", "prompt": "Read n, print 2n.", "tests": {"inputs": ["2\n", "5\n"], "outputs": ["4\n", "10\n"]}},
        {"prompt": "Double it.", "tests": [{"input": "3", "output": "6"}]},   # kind inferred from the tests
        {"kind": "swe", "task": "swe/roman-numerals"},
        {"task": "swe/leap-years", "files": ["calendarx/leap.py"]},           # kind inferred from the task
        {"kind": "swe", "task": "swe/slugify", "prompt": "Fix slugify; reply with a diff."},  # its own prompt
    ])
    t = tasks(path, shuffle=False)
    assert [r.kind for r in t.train] == ["math", "math", "code", "code", "swe", "swe", "swe"]
    tok = ChatTokenizer(tiny_model_dir).tok
    out = [render(r, t.cfg, tok) for r in t.train]
    assert (out[0].text, out[0].reference, json.loads(out[0].metadata)["id"]) == ("What is 2+3?", "5", "m1")
    assert out[1].text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n1+1?<|im_end|>\n"
                           "<|im_start|>assistant\n")
    assert json.loads(out[2].reference) == {"kind": "stdio", "cases": [{"stdin": "2\n", "stdout": "4\n"},
                                                                       {"stdin": "5\n", "stdout": "10\n"}]}
    assert json.loads(out[3].reference)["cases"] == [{"stdin": "3", "stdout": "6"}]
    assert out[4].kind == "swe" and out[4].reference == str((SWE_MINI / "roman-numerals").resolve())
    assert "IIII" in out[4].text and "[start of romans/convert.py]" in out[4].text and "unified diff" in out[4].text
    assert "[start of calendarx/leap.py]" in out[5].text and json.loads(out[5].metadata)["id"] == "leap-years"
    assert out[6].text == "Fix slugify; reply with a diff." and out[6].reference.endswith("slugify")


def test_verl_parquet_loads_chat_prompts_ground_truth_and_code_by_ability(tmp_path, tiny_model_dir):
    rows = [
        {"data_source": "openai/gsm8k", "prompt": [{"role": "user", "content": "Natalia sold 48 clips... How many?"}],
         "ability": "math", "reward_model": {"style": "rule", "ground_truth": "72"},
         "extra_info": {"split": "train", "index": 0}},
        {"data_source": "codecontests", "prompt": [{"role": "user", "content": "Print twice the input."}],
         "ability": "code", "reward_model": {"style": "rule",
                                             "ground_truth": json.dumps({"inputs": ["2\n"], "outputs": ["4\n"]})},
         "extra_info": {"split": "train", "index": 1}},
        {"data_source": "logic", "prompt": [{"role": "user", "content": "3 * 3?"}], "ability": "reasoning",
         "reward_model": {"style": "rule", "ground_truth": "9"}, "extra_info": {"split": "train", "index": 2}},
    ]
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    t = tasks(path, shuffle=False)
    assert [(r.kind, r.id) for r in t.train] == [("math", "0"), ("code", "1"), ("math", "2")]  # "reasoning": the default
    tok = ChatTokenizer(tiny_model_dir).tok
    first, code, _ = (render(r, t.cfg, tok) for r in t.train)
    assert first.text == "<|im_start|>user\nNatalia sold 48 clips... How many?<|im_end|>\n<|im_start|>assistant\n"
    assert first.reference == "72" and json.loads(first.metadata)["data_source"] == "openai/gsm8k"
    assert json.loads(code.reference) == {"kind": "stdio", "cases": [{"stdin": "2\n", "stdout": "4\n"}]}


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_trl_prompt_solution_rows_load_in_either_format(tmp_path, fmt):
    rows = [{"prompt": f"What is {i} + {i}?", "solution": str(2 * i)} for i in range(4)]
    path = tmp_path / f"trl.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    t = tasks(path, shuffle=False)
    cfg = TaskConfig(source=t.src, templates={"math": "{prompt} Answer in \\boxed{}."})
    out = [render(r, cfg, None) for r in t.train]
    assert [o.kind for o in out] == ["math"] * 4
    assert out[3].text == "What is 3 + 3? Answer in \\boxed{}." and out[3].reference == "6"


def test_a_field_map_reads_other_columns_and_nested_ones(tmp_path):
    path = write_jsonl(tmp_path / "custom.jsonl", [{"question": "6*7?", "meta": {"gold": 42}, "uid": "q1"}])
    t = tasks(path, fields={"prompt": "question", "answer": "meta.gold", "id": "uid"})
    [row] = t.train
    assert (row.prompt, row.answer, row.id) == ("6*7?", "42", "q1")


def test_held_out_split_shuffling_and_epochs(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": f"q{i}", "answer": str(i)} for i in range(20)])
    t = tasks(path, held_out_fraction=0.25, epochs=2)
    held = [r.prompt for r in t.held_out()]
    train = [r.prompt for r in t.train]
    assert len(held) == 5 and len(train) == 15 and not set(held) & set(train)
    assert held == [r.prompt for r in tasks(path, held_out_fraction=0.25).held_out()]  # drawn by the seed
    stream = [r.prompt for r in t.stream()]
    assert len(stream) == 30 and sorted(stream[:15]) == sorted(train) == sorted(stream[15:])
    assert stream[:15] != stream[15:] and stream[:15] != train  # shuffled, anew each epoch
    assert stream == [r.prompt for r in tasks(path, held_out_fraction=0.25, epochs=2).stream()]
    other = Tasks(TaskConfig(source=FileSource(path=path, held_out_fraction=0.25), seed=1))
    assert [r.prompt for r in other.held_out()] != held
    endless = tasks(path, shuffle=False).stream()
    assert [r.prompt for r in islice(endless, 25)][20:] == ["q0", "q1", "q2", "q3", "q4"]
    own = write_jsonl(tmp_path / "held.jsonl", [{"prompt": "h", "answer": "1"}])
    assert [r.prompt for r in tasks(path, held_out=own).held_out()] == ["h"]


@pytest.mark.parametrize(("lines", "expected"), [
    (['{"prompt": "a", "answer": "1"}', '{"prompt": "b", "answer": '], r"bad\.jsonl: row 2: not JSON"),
    (['{"prompt": "a", "answer": "1"}', '', '{"prompt": "b"}'], r"bad\.jsonl: row 3: answer: missing"),
    (['{"answer": "1"}'], r"bad\.jsonl: row 1: prompt: missing"),
    (['{"prompt": 7, "answer": "1"}'], r"bad\.jsonl: row 1: prompt: expected text or a list of \{role, content\}"),
    (['{"prompt": "a", "answer": "1", "kind": "poetry"}'], r"bad\.jsonl: row 1: kind: 'poetry' is not a kind"),
    (['{"prompt": "a", "answer": [1, 2]}'], r"bad\.jsonl: row 1: answer: expected a gold answer"),
    (['{"prompt": "a", "kind": "code"}'], r"bad\.jsonl: row 1: tests: missing"),
    (['{"prompt": "a", "tests": {"inputs": ["1"], "outputs": []}}'], r"bad\.jsonl: row 1: tests: inputs and outputs"),
    (['{"prompt": "a", "tests": {"kind": "stdio", "cases": [{"stdin": 1}]}}'], r"bad\.jsonl: row 1: tests: stdio case 0"),
    (['{"prompt": "a", "tests": "not json"}'], r"bad\.jsonl: row 1: tests: a string of tests must be JSON"),
    (['{"prompt": "a", "tests": {"kind": "stdio", "cases": [{"stdout": "1"}], "prefix": 3}}'],
     r"bad\.jsonl: row 1: tests: prefix must be a string"),
    (['{"prompt": "a", "tests": {"fn_name": "1f", "inputs": [[1]], "outputs": [1]}}'],
     r"bad\.jsonl: row 1: tests: fn_name '1f' is not a Python identifier"),
    (['{"kind": "swe", "task": "nowhere"}'], r"bad\.jsonl: row 1: task: .*nowhere: no task\.json"),
    (['{"kind": "swe", "prompt": "fix it"}'], r"bad\.jsonl: row 1: task: missing"),
    (['[1, 2]'], r"bad\.jsonl: row 1: expected an object"),
    ([''], r"bad\.jsonl: no rows"),
])
def test_a_malformed_row_is_one_line_naming_file_row_and_field(tmp_path, lines, expected):
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(DataError, match=expected) as err:
        tasks(path)
    assert "\n" not in str(err.value)


def test_a_malformed_file_is_one_line_naming_it(tmp_path):
    (tmp_path / "broken.parquet").write_bytes(b"not a parquet file")
    (tmp_path / "data.txt").write_text("hello")
    pq.write_table(pa.Table.from_pylist([{"prompt": "a", "answer": "1"}, {"prompt": "b", "answer": None}]),
                   tmp_path / "nulls.parquet")
    for path, expected in [(tmp_path / "broken.parquet", r"broken\.parquet: cannot read as parquet"),
                           (tmp_path / "data.txt", r"data\.txt: unknown data file extension '\.txt'"),
                           (tmp_path / "missing.jsonl", r"missing\.jsonl: no such file"),
                           (tmp_path / "nulls.parquet", r"nulls\.parquet: row 2: answer: missing")]:
        with pytest.raises(DataError, match=expected) as err:
            tasks(path)
        assert "\n" not in str(err.value)


def test_a_chat_prompt_without_a_chat_template_fails_when_checked_naming_the_row(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    path = write_jsonl(tmp_path / "chat.jsonl", [{"prompt": [{"role": "user", "content": "1+1?"}], "answer": "2"}])
    with pytest.raises(DataError, match=r"chat\.jsonl: row 1: prompt: this tokenizer has no chat template"):
        tasks(path).check(AutoTokenizer.from_pretrained(str(tiny_model_dir)))


def test_a_file_source_in_a_run_config(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "q", "answer": "1"}])
    cfg = RunConfig.parse({"task": {"source": {"type": "file", "path": str(data), "epochs": 1}}})
    assert [r.prompt for r in Tasks(cfg.task).stream()] == ["q"]
    with pytest.raises(ConfigError, match=r"task\.source\.path: Field required"):
        RunConfig.parse({"task": {"source": {"type": "file"}}})
    with pytest.raises(ConfigError, match=r"task\.source\.held_out_fraction: .*less than 1"):
        RunConfig.parse({"task": {"source": {"type": "file", "path": "x.jsonl", "held_out_fraction": 1.5}}})


def test_each_kind_has_its_template(tmp_path):
    path = write_jsonl(tmp_path / "two.jsonl", [{"prompt": "2+2?", "answer": "4"}, {"prompt": "Echo.", "tests": STDIO}])
    cfg = TaskConfig(source=FileSource(path=path, shuffle=False),
                     templates={"math": "{prompt} Box it.", "code": "{prompt}\nUse a ```python block."})
    math, code = (render(r, cfg, None).text for r in Tasks(cfg).train)
    assert (math, code) == ("2+2? Box it.", "Echo.\nUse a ```python block.")
    with pytest.raises(ConfigError, match=r"task\.templates\.code must contain \{prompt\}"):
        RunConfig.parse({"task": {"templates": {"code": "no placeholder"}}})
