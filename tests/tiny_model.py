"""A tiny but real Qwen2-style code model, built at test time.

This module owns the test fixture model: a byte-level BPE tokenizer trained in
a second on stdlib Python source with Qwen2.5-Coder's FIM special tokens, a
randomly initialised two-layer `Qwen2ForCausalLM`, both saved where
`AutoTokenizer` / `AutoModelForCausalLM` load them, and the same model written
as a GGUF file that transformers' GGUF loader reads back. Nothing is
downloaded; the weights are noise, so only the plumbing is under test.
"""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import numpy as np
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|fim_pad|>"
SPECIAL_TOKENS: tuple[str, ...] = (
    EOS_TOKEN,
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    PAD_TOKEN,
    "<|file_sep|>",
    "<|repo_name|>",
)
VOCAB_SIZE = 1000

# A minimal chat template, so the chat path (apply_chat_template) is exercised; its
# turns end with EOS. The GGUF copy has none, which exercises the plain fallback.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|repo_name|>{{ m['role'] }}\n{{ m['content'] }}<|endoftext|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|repo_name|>assistant\n{% endif %}"
)

# Qwen2's own split (transformers' Qwen2Tokenizer and llama.cpp's "qwen2"
# pre-tokenizer). Training with it lets the GGUF, whose loader rebuilds the
# pre-tokenizer from the name "qwen2", tokenize exactly like the original.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# A fixed list keeps the vocabulary the same from run to run.
_CORPUS_MODULES = (
    "textwrap.py",
    "string.py",
    "functools.py",
    "dataclasses.py",
    "contextlib.py",
    "shlex.py",
    "fnmatch.py",
    "glob.py",
    "heapq.py",
    "bisect.py",
    "abc.py",
    "keyword.py",
    "copy.py",
    "operator.py",
    "queue.py",
    "sched.py",
    "colorsys.py",
    "difflib.py",
)
_CORPUS_BYTES = 300_000


def _corpus() -> list[str]:
    """About 300 KB of real Python source from the running interpreter's stdlib."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    paths = [stdlib / name for name in _CORPUS_MODULES]
    paths = [path for path in paths if path.is_file()]
    if not paths:  # a stripped stdlib: take whatever is there
        paths = sorted(stdlib.glob("*.py"))
    texts: list[str] = []
    total = 0
    for path in paths:
        text = path.read_text(encoding="utf-8", errors="replace")
        texts.append(text)
        total += len(text)
        if total >= _CORPUS_BYTES:
            break
    if not texts:
        raise RuntimeError(f"no Python source found under {stdlib}")
    return texts


def train_tokenizer(vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    """A byte-level BPE tokenizer whose decode(encode(text)) == text for any text."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        # All 256 byte symbols, so no input can ever be out of vocabulary.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    return tokenizer


def wrap_tokenizer(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (EOS_TOKEN, PAD_TOKEN)],
        # The default cleanup rewrites " ." and " ," and breaks round-trips.
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
    )


# The tiny model's size, for other architectures built in tests as well.
TINY_SHAPE = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 4096,
}


def tiny_config(vocab_size: int, eos_id: int, pad_id: int) -> Qwen2Config:
    return Qwen2Config(
        vocab_size=vocab_size,
        **TINY_SHAPE,
        # Qwen has no BOS of its own; its configs reuse <|endoftext|>.
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        # Untied: with tied random embeddings the model just repeats its last token.
        tie_word_embeddings=False,
    )


def build_tiny_model(out_dir: Path, seed: int = 0) -> Path:
    """Train the tokenizer, build a random tiny Qwen2, save both to `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = wrap_tokenizer(train_tokenizer())
    config = tiny_config(
        vocab_size=len(tokenizer),
        eos_id=tokenizer.convert_tokens_to_ids(EOS_TOKEN),
        pad_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN),
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).eval()
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def _vocab_and_merges(model_dir: Path) -> tuple[list[str], list[str], set[str]]:
    """Tokens by id, merges as "a b" strings, and the special tokens, from tokenizer.json."""
    data = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab: dict[str, int] = dict(data["model"]["vocab"])
    specials: set[str] = set()
    for added in data.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
        if added.get("special"):
            specials.add(added["content"])
    tokens = [""] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    if "" in tokens:
        raise ValueError("token ids are not contiguous")
    # tokenizers writes merges as [a, b] pairs today and as "a b" before 0.20.
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    return tokens, merges, specials


def write_tiny_gguf(model_dir: Path, out_file: Path, chat_template: str | None = None) -> Path:
    """Write the model in `model_dir` as an f32 GGUF (architecture "qwen2") at `out_file`,
    with `chat_template` as its ``tokenizer.chat_template`` when given.

    Only the metadata transformers' GGUF loader reads is written. Qwen2's q/k
    weights are stored unpermuted (only llama's are permuted by llama.cpp).
    """
    # gguf is optional for the package, so it is imported only here.
    import gguf

    model_dir, out_file = Path(model_dir), Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    config = Qwen2Config.from_pretrained(model_dir)
    model = Qwen2ForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokens, merges, specials = _vocab_and_merges(model_dir)
    if len(tokens) != config.vocab_size:
        raise ValueError(f"{len(tokens)} tokens but vocab_size {config.vocab_size}")

    arch = gguf.MODEL_ARCH.QWEN2
    writer = gguf.GGUFWriter(out_file, gguf.MODEL_ARCH_NAMES[arch])
    writer.add_name("mmlsp-tiny-qwen2")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    rope = getattr(config, "rope_parameters", None) or {}
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    writer.add_vocab_size(config.vocab_size)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t in tokens]
    )
    writer.add_token_merges(merges)
    writer.add_bos_token_id(config.bos_token_id)
    writer.add_eos_token_id(config.eos_token_id)
    writer.add_pad_token_id(config.pad_token_id)
    writer.add_add_bos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    name_map = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # a missing output.weight is how GGUF says "tied"
        base, _, suffix = hf_name.rpartition(".")
        gguf_base = name_map.get_name(base)
        if gguf_base is None:
            raise ValueError(f"no GGUF name for {hf_name}")
        array = tensor.detach().to(torch.float32).numpy().astype(np.float32)
        writer.add_tensor(f"{gguf_base}.{suffix}", array)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_file


def write_oversized_model(model_dir: Path, out_dir: Path, total_bytes: int) -> Path:
    """A copy of the tiny model whose MLPs are widened until its weights take
    ``total_bytes``: a valid safetensors file, stored sparse (it costs no disk), that
    no machine with less memory than that can map or load.
    """
    import shutil
    import struct

    from safetensors import safe_open

    shutil.copytree(model_dir, out_dir)
    config = json.loads((out_dir / "config.json").read_text())
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    # Three fp16 MLP matrices per layer carry nearly all of the bytes.
    wide = max(config["intermediate_size"], total_bytes // (3 * layers * hidden * 2))
    config["intermediate_size"] = wide
    (out_dir / "config.json").write_text(json.dumps(config))
    header: dict[str, dict] = {}
    blobs: list[tuple[int, bytes]] = []
    offset = 0
    weights = out_dir / "model.safetensors"
    with safe_open(str(weights), "pt") as f:
        for name in f.keys():  # noqa: SIM118 - safe_open is not iterable
            tensor = f.get_tensor(name).half()
            shape = list(tensor.shape)
            if name.endswith(("mlp.gate_proj.weight", "mlp.up_proj.weight")):
                shape = [wide, hidden]
            elif name.endswith("mlp.down_proj.weight"):
                shape = [hidden, wide]
            size = 2 * int(np.prod(shape))
            header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]}
            if shape == list(tensor.shape):
                blobs.append((offset, tensor.numpy().tobytes()))
            offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(weights, "wb") as out:
        out.write(struct.pack("<Q", len(raw)) + raw)
        base = out.tell()
        for start, blob in blobs:
            out.seek(base + start)
            out.write(blob)
        out.truncate(base + offset)  # the widened matrices stay holes: zeros, no disk
    return out_dir
