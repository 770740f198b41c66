"""Image references in text, resolved and read only inside the workspace, within caps."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from mmlsp.context.images import (
    ImageLimits,
    ImageRefused,
    find_references,
    load_referenced,
    read_image,
    reference_at,
    resolve,
)


def draw(path: Path, size=(64, 40), fmt: str | None = None, mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    color = (200, 30, 30, 128) if mode == "RGBA" else (200, 30, 30)
    Image.new(mode, size, color).save(path, format=fmt)
    return path


def test_references_in_comments_docstrings_strings_and_markdown():
    text = (
        "# layout as in docs/mockup.png\n"
        '"""See ![the form](assets/form.jpeg "Form") and ui/shot.WEBP."""\n'
        'load("plots/out.gif")\n'
        "not an image: notes.txt, a URL: https://example.com/x.png, word.pngx\n"
    )
    targets = [r.target for r in find_references(text)]
    assert targets == [
        "docs/mockup.png",
        "assets/form.jpeg",
        "ui/shot.WEBP",
        "plots/out.gif",
    ]
    md = find_references("![a](<my pics/a b.png>)")
    assert [(r.start, r.end, r.target) for r in md] == [(0, 23, "my pics/a b.png")]


def test_reference_at_a_character():
    line = "# see docs/mockup.png for the layout"
    assert reference_at(line, 6).target == "docs/mockup.png"
    assert reference_at(line, 21).target == "docs/mockup.png"  # just after the name
    assert reference_at(line, 2) is None
    assert reference_at(line, 25) is None


def test_resolve_relative_to_the_document_then_the_roots(tmp_path: Path):
    root = tmp_path / "ws"
    draw(root / "pkg" / "local.png")
    draw(root / "docs" / "top.png")
    doc = root / "pkg" / "mod.py"
    assert resolve("local.png", doc, [root]) == root / "pkg" / "local.png"
    assert resolve("docs/top.png", doc, [root]) == root / "docs" / "top.png"
    assert resolve("/docs/top.png", doc, [root]) == root / "docs" / "top.png"
    assert resolve("missing.png", doc, [root]) is None
    assert resolve("https://example.com/x.png", doc, [root]) is None
    assert resolve("data:image/png;base64,AAAA", doc, [root]) is None


def test_reads_png_jpeg_webp_and_the_first_frame_of_a_gif(tmp_path: Path):
    root = tmp_path
    for name in ("a.png", "b.jpg", "c.webp"):
        loaded = read_image(draw(root / name), [root])
        assert loaded.image.mode == "RGB" and loaded.image.size == (64, 40)
        assert len(loaded.sha256) == 64
    frames = [Image.new("RGB", (20, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:])
    gif = read_image(root / "anim.gif", [root])
    assert gif.format == "GIF" and gif.image.mode == "RGB"
    assert gif.image.getpixel((5, 5))[0] > 200  # red: the first frame
    alpha = read_image(draw(root / "t.png", mode="RGBA"), [root])
    assert alpha.image.mode == "RGB"


def test_downscaled_to_the_max_side(tmp_path: Path):
    path = draw(tmp_path / "big.png", size=(3000, 1500))
    loaded = read_image(path, [tmp_path], ImageLimits(max_side=512))
    assert loaded.image.size == (512, 256)
    assert (loaded.width, loaded.height) == (3000, 1500)
    assert loaded.data_url().startswith("data:image/png;base64,")


def test_refuses_outside_the_workspace_and_links_out(tmp_path: Path):
    root, outside = tmp_path / "ws", tmp_path / "secret"
    root.mkdir()
    secret = draw(outside / "s.png")
    with pytest.raises(ImageRefused, match="outside the workspace"):
        read_image(secret, [root])
    (root / "link.png").symlink_to(secret)
    with pytest.raises(ImageRefused, match="outside the workspace"):
        read_image(root / "link.png", [root])
    (root / "dir").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ImageRefused, match="outside the workspace"):
        read_image(root / "dir" / "s.png", [root])
    with pytest.raises(ImageRefused, match="no workspace folder"):
        read_image(secret, [])
    # A link that stays inside is followed.
    inner = draw(root / "real.png")
    (root / "alias.png").symlink_to(inner)
    assert read_image(root / "alias.png", [root]).path == inner


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_refuses_a_fifo_without_blocking(tmp_path: Path):
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(ImageRefused, match="not a regular file"):
        read_image(tmp_path / "pipe.png", [tmp_path])


def test_refuses_a_device_linked_from_inside(tmp_path: Path):
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    with pytest.raises(ImageRefused, match="outside the workspace"):
        read_image(tmp_path / "zero.png", [tmp_path])
    # Even with / as the workspace, a device is not read.
    with pytest.raises(ImageRefused, match="not a regular file"):
        read_image(tmp_path / "zero.png", [Path("/")])


def test_refuses_oversized_files_and_non_images(tmp_path: Path):
    path = draw(tmp_path / "a.png", size=(300, 300))
    size = path.stat().st_size
    with pytest.raises(ImageRefused, match="too large"):
        read_image(path, [tmp_path], ImageLimits(max_bytes=size - 1))
    (tmp_path / "fake.png").write_text("print('not an image')\n")
    with pytest.raises(ImageRefused, match="not a PNG, JPEG, WebP or GIF image"):
        read_image(tmp_path / "fake.png", [tmp_path])
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageRefused, match="not a PNG"):
        read_image(tmp_path / "notes.txt", [tmp_path])
    # A BMP renamed .png: a format whose decoder is not allowed.
    Image.new("RGB", (4, 4)).save(tmp_path / "bmp.png", format="BMP")
    with pytest.raises(ImageRefused, match="not a PNG"):
        read_image(tmp_path / "bmp.png", [tmp_path])
    # A truncated PNG.
    (tmp_path / "cut.png").write_bytes(path.read_bytes()[:60])
    with pytest.raises(ImageRefused):
        read_image(tmp_path / "cut.png", [tmp_path])


def _png_bomb(width: int, height: int) -> bytes:
    """A small PNG file that declares width × height grey pixels (all zero)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    data = b"".join(raw.compress(row) for _ in range(64)) + raw.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def test_refuses_a_decompression_bomb_before_decoding(tmp_path: Path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_bomb(50_000, 50_000))  # 2.5 gigapixels in a few kB
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ImageRefused, match="pixels"):
        read_image(bomb, [tmp_path])
    # Below Pillow's own limit, ours holds.
    small = tmp_path / "wide.png"
    small.write_bytes(_png_bomb(8000, 6000))
    with pytest.raises(ImageRefused, match=r"too many pixels \(8000×6000"):
        read_image(small, [tmp_path], ImageLimits(max_pixels=10_000_000))


def test_load_referenced_reads_each_named_image_once_up_to_a_limit(tmp_path: Path):
    root = tmp_path / "ws"
    for name in ("a.png", "b.png", "c.png"):
        draw(root / name)
    draw(tmp_path / "out.png")
    doc = root / "m.py"
    text = "# a.png and again ./a.png\n# ../out.png, missing.png\n# b.png c.png\n"
    images, refused = load_referenced(text, doc, [root])
    assert [i.path.name for i in images] == ["a.png", "b.png"]
    assert len(refused) == 1 and "outside the workspace" in refused[0]
    assert load_referenced("no images here", doc, [root]) == ([], [])
