"""LoRA adapters on the wire: recognised by their names, merged as W + B @ A onto the base, and a
payload that does not fit the base model is refused with the module named."""

import pytest
import torch
from safetensors.torch import save_file

from relayrl.weights.lora import BaseWeights, is_adapter, merge


@pytest.fixture
def base(tmp_path):
    torch.manual_seed(0)
    save_file({"m.q.weight": torch.randn(6, 4), "m.norm.weight": torch.ones(4)}, tmp_path / "model.safetensors")
    return BaseWeights(tmp_path)


def test_a_payload_of_a_and_b_is_an_adapter_and_merges_onto_the_base(base):
    a, b = torch.randn(2, 4), torch.randn(6, 2)
    adapter = {"m.q.lora_A.weight": a, "m.q.lora_B.weight": b}
    assert is_adapter(adapter) and not is_adapter({**adapter, "m.norm.weight": torch.ones(4)}) and not is_adapter({})
    merged = merge(base, adapter)
    assert set(merged) == {"m.q.weight"}
    torch.testing.assert_close(merged["m.q.weight"], base.get("m.q.weight") + b @ a, rtol=0, atol=1e-6)
    assert merge(base, adapter, torch.bfloat16)["m.q.weight"].dtype == torch.bfloat16


@pytest.mark.parametrize(("adapter", "message"), [
    ({"m.q.lora_A.weight": torch.zeros(2, 4)}, "'m.q' lacks B"),
    ({"m.k.lora_A.weight": torch.zeros(2, 4), "m.k.lora_B.weight": torch.zeros(6, 2)}, "'m.k.weight' is not a weight"),
    ({"m.q.lora_A.weight": torch.zeros(2, 5), "m.q.lora_B.weight": torch.zeros(6, 2)}, r"A \(2, 5\) and B \(6, 2\)"),
])
def test_an_adapter_that_does_not_fit_is_refused_by_name(base, adapter, message):
    with pytest.raises(ValueError, match=message):
        merge(base, adapter)
