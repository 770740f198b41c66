"""A tiny but real vision-language model (LLaVA), built at test time.

A one-layer CLIP vision tower on 28×28 images (four 14-pixel patches) and a two-layer
Qwen2 language model, joined by LLaVA's projector: ``LlavaForConditionalGeneration``
with random weights, saved with a ``LlavaProcessor`` (CLIP's image processor, a
byte-level tokenizer with an ``<image>`` token, and a chat template that takes image
content parts) where transformers' ``AutoProcessor`` and
``AutoModelForImageTextToText`` load them: the path users' models take. Builds in
well under a second; nothing is downloaded. The weights are noise, so only the
plumbing is under test.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<pad>"
IMAGE_TOKEN = "<image>"
IMAGE_SIZE = 28
PATCH_SIZE = 14

# ChatML, with image parts as the image token (the processor expands it to one token
# per patch).
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for p in m['content'] %}{% if p['type'] == 'image' %}<image>"
    "{% elif p['type'] == 'text' %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE without merges: 256 byte tokens and the special ones."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokenizer = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=["<|endoftext|>", "<|im_start|>", IMAGE_TOKEN],
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
    )


def build_tiny_vlm(out_dir: Path, seed: int = 0) -> Path:
    """Build the tiny LLaVA and its processor, save both to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,  # CLIP's class token, dropped by "default"
    )
    eos = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    pad = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=32,
    )
    text = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=4096,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=pad,
        tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def draw_mockup(path: Path) -> None:
    """Draw the tests' form mockup (a field and a button), 160×100, as PNG or JPEG by
    the file's suffix."""
    from PIL import Image, ImageDraw

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (160, 100), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle((10, 10, 150, 35), outline="black")
    draw.text((14, 16), "Name", fill="black")
    draw.rectangle((10, 60, 70, 85), fill="blue")
    img.save(path, format="PNG" if path.suffix == ".png" else "JPEG")
