"""The vision engine: a tiny real VLM loaded the users' way, on the host's generation
thread, cancellable; images as image_url parts for a served model; the setting."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from mmlsp.chat.vision import ask_with_images, describe_image, describe_messages
from mmlsp.config import Settings, merge
from mmlsp.context.images import LoadedImage, read_image
from mmlsp.engine import EngineError, EngineHost, GenerationRequest, LoadSpec
from mmlsp.engine.openai import OpenAIEngine, RemoteSpec
from mmlsp.engine.vision import LocalVisionEngine, VisionPrompt, user_message
from tests.llama_server import FakeRequest, FakeServer


def drawn(tmp_path: Path, name: str = "mockup.png") -> LoadedImage:
    img = Image.new("RGB", (120, 80), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle((10, 10, 110, 30), outline="black")
    draw.text((14, 14), "Name", fill="black")
    img.save(tmp_path / name)
    return read_image(tmp_path / name, [tmp_path])


def test_the_tiny_vlm_loads_through_the_auto_classes_and_describes_an_image(
    tiny_vlm_dir: Path, tmp_path: Path
) -> None:
    engine = LocalVisionEngine(str(tiny_vlm_dir), device="cpu")
    assert type(engine.model).__name__ == "LlavaForConditionalGeneration"
    prompt = VisionPrompt([user_message("What is this?")], [drawn(tmp_path)])
    assert "[image]" in prompt and "What is this?" in prompt
    result = engine.generate(GenerationRequest(prompt, 8))
    assert result.generated_tokens >= 1 and result.prompt_tokens > 4
    assert result.finish_reason in ("eos", "length")
    # Greedy: the same answer twice.
    assert engine.generate(GenerationRequest(prompt, 8)).text == result.text
    # Text only works too.
    assert engine.generate(GenerationRequest("hello", 4)).generated_tokens >= 1


def test_cancel_and_stop_end_generation(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    engine = LocalVisionEngine(str(tiny_vlm_dir), device="cpu")
    prompt = VisionPrompt([user_message("Describe.")], [drawn(tmp_path)])
    cancelled = GenerationRequest(prompt, 64)
    cancelled.cancel.set()
    assert engine.generate(cancelled).finish_reason == "cancelled"
    seen: list[str] = []

    def stop_after_three(text: str) -> int | None:
        seen.append(text)
        return None if len(seen) < 3 else len(text)

    result = engine.generate(GenerationRequest(prompt, 64, stop_at=stop_after_three))
    assert result.finish_reason == "stop" and result.generated_tokens <= 4
    late = GenerationRequest(prompt, 64, deadline=time.monotonic() - 1)
    assert engine.generate(late).finish_reason == "deadline"


def test_the_host_runs_the_vision_model_on_its_generation_thread(
    tiny_vlm_dir: Path, tmp_path: Path
) -> None:
    threads: list[str] = []

    def factory(model, device, progress, **kw):
        engine = LocalVisionEngine(model, device="cpu", progress=progress, **kw)
        generate = engine.generate

        def spy(request):
            threads.append(threading.current_thread().name)
            return generate(request)

        engine.generate = spy  # type: ignore[method-assign]
        return engine

    async def run() -> None:
        host = EngineHost(vision_factory=factory)
        image = drawn(tmp_path)
        assert not host.vision_configured
        with pytest.raises(EngineError, match="no vision model is set"):
            await describe_image(host, image, "mockup.png")
        spec = LoadSpec(str(tiny_vlm_dir), "cpu", "none", str(tmp_path))
        assert host.load_vision(spec)
        status = await asyncio.to_thread(host.wait_vision, 60)
        assert status.state == "ready", status
        text = await describe_image(host, image, "mockup.png")
        assert isinstance(text, str)
        assert threads and threads[0].startswith("mmlsp-generate")
        # Cancelled before it starts: an error, and nothing else breaks.
        cancel = threading.Event()
        cancel.set()
        with pytest.raises(EngineError, match="cancelled"):
            await ask_with_images(host, describe_messages("x.png"), [image], 8, 30, cancel=cancel)
        host.load_vision(None)
        assert host.vision_engine is None and not host.vision_configured
        host.shutdown()

    asyncio.run(run())


def test_a_served_vision_model_gets_image_url_parts(tmp_path: Path) -> None:
    def handle(request: FakeRequest) -> None:
        request.start_stream()
        request.event({"choices": [{"delta": {"content": "A form."}, "finish_reason": "stop"}]})
        request.event("[DONE]")
        request.end_stream()

    image = drawn(tmp_path)
    with FakeServer(handle) as server:
        engine = OpenAIEngine(RemoteSpec(server.base_url + "/v1", "fake-vlm"))
        prompt = VisionPrompt(describe_messages("mockup.png"), [image])
        assert engine.generate(GenerationRequest(prompt, 16)).text == "A form."
        (post,) = server.posts("/v1/chat/completions")
        (message,) = post.body["messages"]
        image_part, text_part = message["content"]
        assert image_part["type"] == "image_url"
        assert image_part["image_url"]["url"] == image.data_url()
        assert text_part["type"] == "text" and "mockup.png" in text_part["text"]


def test_vision_prompt_checks_its_images(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="1 image parts but 0 images"):
        VisionPrompt([user_message("?")], [])
    prompt = VisionPrompt([user_message("a\ud800b")], [drawn(tmp_path)])
    fixed = prompt.map_text(lambda s: s.replace("\ud800", "?"))
    assert fixed.messages[0]["content"][1]["text"] == "a?b" and fixed.images == prompt.images


def test_the_vision_model_setting() -> None:
    assert Settings().vision_model == ""
    settings, errors = merge(Settings(), {"visionModel": " HuggingFaceTB/SmolVLM-256M-Instruct "})
    assert errors == [] and settings.vision_model == "HuggingFaceTB/SmolVLM-256M-Instruct"
    assert merge(Settings(), {"visionModel": 3})[1]
