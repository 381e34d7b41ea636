"""The repository's foundation: current stubs, a documented config, a lazy CLI."""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from relayrl.config import RunConfig

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


def _fields(model):
    for name, field in model.model_fields.items():
        yield model.__name__, name, field
        ann = field.annotation
        for sub in getattr(ann, "__args__", ()) or (ann,):
            if isinstance(sub, type) and hasattr(sub, "model_fields"):
                yield from _fields(sub)


def test_every_config_field_is_documented():
    undocumented = [f"{m}.{n}" for m, n, f in _fields(RunConfig) if not f.description]
    assert undocumented == []


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")))
def test_shipped_configs_validate(path):
    RunConfig.load(path)


def test_config_errors_name_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learner:\n  lr: -1\n  batch_grups: 3\n")
    with pytest.raises(Exception) as info:
        RunConfig.load(bad)
    text = str(info.value)
    assert "learner.lr" in text and "learner.batch_grups" in text


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
