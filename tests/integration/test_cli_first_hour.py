"""The mistakes of a first hour, made through the `relayrl` command as a person makes them: each
is one or two lines on stderr naming the file and key, the path, the port or the variable, and
the flag that sets it (exit code 2), never a traceback; a service that dies while the launcher
starts the run is reported at once with the last line of its log; `--version` and help texts."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer.main

from relayrl.cli import app

ROOT = Path(__file__).resolve().parents[2]


def relayrl(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "relayrl.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200", **(env or {})})


def one_line(result: subprocess.CompletedProcess, code: int = 2) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr[-2000:]
    assert len(lines) <= 2 and "Traceback" not in result.stderr and "╭" not in result.stderr, result.stderr[-2000:]
    return result.stderr.strip()


@pytest.fixture
def bad_config(tmp_path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text("learner:\n  optim:\n    lr: fast\n")
    return path


def test_a_config_mistake_is_one_line_for_every_command_that_reads_one(bad_config, tiny_model_dir, redis_url):
    model = str(tiny_model_dir)
    commands = [
        ["train", bad_config],
        ["serve", "reward", "--config", bad_config],
        ["serve", "learner", "--config", bad_config, "--model", model, "--out", bad_config.parent / "out"],
        ["serve", "actor", "--config", bad_config, "--model", model, "--learner", "127.0.0.1:1", "--reward", "127.0.0.1:1"],
        ["serve", "reward-worker", "--config", bad_config],
        ["serve", "gateway", "--config", bad_config, "--port", "0"],
        ["model", "init-tiny", bad_config.parent / "tiny", "--config", bad_config],
        ["score", "math", "--response", "1", "--gold", "1", "--config", bad_config],
        ["eval", model, "-d", "task", "--config", bad_config],
    ]
    for command in commands:
        message = one_line(relayrl(*command))
        assert message == f"config error: {bad_config}: learner.optim.lr: Input should be a valid number, unable to " \
                          "parse string as a number (got 'fast')", command


def test_an_unwritable_out_and_a_busy_port_name_the_path_the_port_and_the_flag(tmp_path, redis_url):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    message = one_line(relayrl("train", ROOT / "configs" / "quickstart.yaml", "--out", blocker / "run"))
    assert message == f"error: cannot write to --out {blocker / 'run'}: Not a directory (pass another --out)"
    config = tmp_path / "run.yaml"
    config.write_text("run: busy\n")
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        for command, flag in ((["serve", "reward", "--config", config, "--redis", redis_url, "--port", port], "--port"),
                              (["serve", "reward", "--config", config, "--redis", redis_url, "--port", "0",
                                "--metrics-port", port], "--metrics-port"),
                              (["serve", "gateway", "--port", port], "--port"),
                              (["serve", "relay", "--upstream", "127.0.0.1:1", "--port", port], "--port")):
            assert one_line(relayrl(*command)) == f"error: port {port} on 127.0.0.1 is in use: pass another with {flag}"


def test_what_train_can_check_stops_it_before_anything_starts(tmp_path):
    cases = {"task:\n  name: reasoning_gym\n  dataset: basic_arithmatic\n":
             "error: task: reasoning-gym cannot make 'basic_arithmatic' with dataset_options {}: Dataset "
             "'basic_arithmatic' not registered",
             f"model:\n  path: {tmp_path / 'models' / 'nope'}\n":
             f"error: model.path: model directory {tmp_path / 'models' / 'nope'} does not exist",
             "queue:\n  type: redis\n  url: redis://127.0.0.1:1/0\n":
             "error: Redis at redis://127.0.0.1:1/0 does not answer (queue.url): Error 111 connecting to 127.0.0.1:1. "
             "Connection refused."}
    for k, (text, expected) in enumerate(cases.items()):
        config = tmp_path / f"c{k}.yaml"
        config.write_text(text)
        t0 = time.monotonic()
        assert one_line(relayrl("train", config, "--out", tmp_path / f"out{k}")) == expected
        assert time.monotonic() - t0 < 60
        assert not (tmp_path / f"out{k}" / "logs").exists()  # nothing was started


def test_an_empty_token_is_refused_by_the_services_and_the_gateway_alike(tmp_path, redis_url):
    config = tmp_path / "run.yaml"
    config.write_text("run: empty-token\n")
    expected = "RELAYRL_AUTH_TOKEN is set but empty: set a token, or unset it to run without auth"
    for command in (["serve", "reward", "--config", config, "--redis", redis_url, "--port", "0"],
                    ["serve", "gateway", "--redis", redis_url, "--port", "0"],
                    ["train", ROOT / "configs" / "quickstart.yaml", "--out", tmp_path / "out"]):
        assert one_line(relayrl(*command, env={"RELAYRL_AUTH_TOKEN": ""})) == f"error: {expected}", command


def test_a_service_that_dies_at_start_up_is_reported_at_once_with_its_last_line(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # passes the check for a model directory; no model loads from it
    config = tmp_path / "run.yaml"
    config.write_text(f"model:\n  path: {broken}\n")
    t0 = time.monotonic()
    result = relayrl("train", config, "--out", tmp_path / "out", timeout=300)
    elapsed = time.monotonic() - t0
    message = one_line(result, code=1)
    assert message.startswith("run failed: ") and "exited during start-up with code 1: " in message, message
    name = message.removeprefix("run failed: ").split()[0]
    log = tmp_path / "out" / "logs" / f"{name}.log"
    exception = [line.strip() for line in log.read_text().splitlines() if re.match(r"^\w+Error: ", line)][-1]
    assert f"code 1: {exception}" in message and message.endswith(f" (log: {log})"), message  # the cause, one line
    assert elapsed < 100, elapsed  # not a start-up timeout


def test_version_help_texts_and_no_bool_metavars():
    assert relayrl("--version").stdout == "relayrl 0.1.0\n"
    serve = typer.main.get_command(app).commands["serve"]
    for name, command in serve.commands.items():
        undocumented = [p.name for p in command.params if not getattr(p, "help", None) and p.name != "help"]
        assert not undocumented, (name, undocumented)
        assert "<bool>" not in relayrl("serve", name, "--help").stdout, name
    assert "<bool>" not in relayrl("train", "--help").stdout


def test_serve_learner_refuses_the_steps_train_refuses(tiny_model_dir, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("run: steps\n")
    for command in (["train", config, "--steps", "0"],
                    ["serve", "learner", "--config", config, "--model", tiny_model_dir, "--out", tmp_path, "--steps", "0"]):
        result = relayrl(*command)
        assert result.returncode == 2 and "Invalid value for '--steps'" in result.stderr, command


def test_a_folder_another_launcher_is_using_is_refused(tmp_path):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with open(out / "launcher.lock", "w") as held:  # as a `relayrl train` running in another terminal holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242\n")
        held.flush()
        message = one_line(relayrl("train", ROOT / "configs" / "quickstart.yaml", "--out", out))
    assert message == f"error: {out} is in use by another `relayrl train` (pid 4242): wait for it to end, or pass a new --out"
