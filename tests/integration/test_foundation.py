"""The repository's foundation: current stubs, a documented config, a lazy CLI."""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _gen():
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checked_in_stubs_are_current():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_stale_check_notices_a_changed_proto(tmp_path):
    gen = _gen()
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    proto = tmp_path / "protos" / "relayrl" / "v1" / "common.proto"
    proto.write_text(proto.read_text().replace("string metadata = 5;", "string metadata = 5;\n  string extra = 99;"))
    assert gen.stale(gen.generate(tmp_path / "protos")) == ["common_pb2.py", "common_pb2.pyi"]


def test_cli_help_imports_no_heavy_module():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom relayrl.cli import app\n"
            "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0, r.output\n"
            "assert 'train' in r.output\n"
            "heavy = [m for m in ('torch', 'transformers', 'grpc', 'redis') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_readme_configuration_reference_is_current():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_config_reference.py"), "--check"])
    assert result.returncode == 0, "stale: run scripts/gen_config_reference.py"


@pytest.mark.parametrize("module,forbidden", [
    ("relayrl.learner.intake", ("torch", "transformers", "relayrl.learner.policy", "relayrl.learner.runlog")),
    ("relayrl.learner.policy", ("relayrl.learner.intake", "relayrl.learner.runlog")),
    ("relayrl.learner.runlog", ("torch", "relayrl.learner.intake", "relayrl.learner.policy")),
])
def test_the_learner_s_parts_do_not_import_each_other(module, forbidden):
    code = f"import sys, {module}; print(' '.join(m for m in {forbidden!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"{module} imports {out}"


def test_the_cli_prints_the_line_and_no_traceback(tmp_path):
    bad = tmp_path / "run.yaml"
    bad.write_text("learner: {batch_grups: 3}\n")
    result = subprocess.run([sys.executable, "-m", "relayrl.cli", "train", str(bad), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == f"config error: {bad}: learner.batch_grups: unknown key; did you mean `batch_groups`?"
    assert "Traceback" not in result.stdout + result.stderr
