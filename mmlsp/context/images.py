"""Images the code refers to: found in text, resolved inside the workspace, read safely.

A comment, docstring, string or Markdown text may name a picture the code is about (a
UI mockup, a diagram, a screenshot, a plot): a bare path such as ``docs/form.png`` or
a Markdown image link ``![form](docs/form.png)``. This module finds such references
(``find_references``, ``reference_at``), resolves them against the document's folder
and the workspace roots (``resolve``), and reads the file (``read_image``) only when
it is safe to:

* only a regular file whose real path (every link resolved) lies inside a workspace
  root: a link out of the workspace, a FIFO, a device or a socket is refused, and the
  file is opened without following a final link and checked with ``fstat`` on the
  open descriptor, so it cannot be swapped after the check;
* at most ``ImageLimits.max_bytes`` bytes, and at most ``max_pixels`` pixels as the
  header declares them, checked before any pixel is decoded (a decompression bomb is
  refused without being expanded);
* decoded by Pillow, by one of the PNG, JPEG, WebP and GIF decoders only (GIF and
  animated WebP: the first frame), converted to RGB over white, and downscaled so that
  its longer side is at most ``max_side``.

Nothing here runs unless a vision model is configured: the callers ask for an image
only then. Pillow is imported only when an image is actually decoded.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image as PILImage

# The decoders Pillow may use, by the extensions a reference may end with.
FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".gif": "GIF",
}
_EXTENSIONS = "png|jpe?g|webp|gif"
# ![alt](path) or ![alt](<path with spaces> "title")
_MARKDOWN = re.compile(
    r"!\[[^\]\n]*\]\(\s*(?:<(?P<angle>[^>\n]+)>|(?P<plain>[^)\s]+))(?:\s+\"[^\"\n]*\")?\s*\)"
)
# A bare path ending in an image extension, not glued to a word, a URL's "://" or a
# longer path on its left.
_BARE = re.compile(
    rf"(?<![\w/.\\:~-])(?P<path>(?:[A-Za-z]:[\\/])?[\w./\\~+-]*[\w-]\.(?:{_EXTENSIONS}))(?![\w-])",
    re.IGNORECASE,
)
# "https:", "data:", "file:"... (but not a Windows drive letter, "C:").
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


class ImageRefused(Exception):  # noqa: N818 - a refusal, shown to the user as is
    """An image that is not read, with the reason in words the user can act on."""


@dataclass(frozen=True)
class ImageLimits:
    # Bytes of the file on disk.
    max_bytes: int = 20_000_000
    # Pixels the image declares (width × height), checked before decoding.
    max_pixels: int = 40_000_000
    # The longer side of the image handed to a model, after downscaling.
    max_side: int = 1024


@dataclass(frozen=True)
class ImageReference:
    """An image named in text: ``target`` as written, at ``[start, end)`` of the text
    (the whole ``![..](..)`` for a Markdown link)."""

    start: int
    end: int
    target: str


@dataclass(frozen=True)
class LoadedImage:
    """An image read and decoded: RGB, downscaled; ``sha256`` of the file's bytes."""

    path: Path
    sha256: str
    format: str
    # The size the file declares, before downscaling.
    width: int
    height: int
    image: PILImage.Image

    def png_bytes(self) -> bytes:
        out = io.BytesIO()
        self.image.save(out, format="PNG")
        return out.getvalue()

    def data_url(self) -> str:
        """The image as a ``data:image/png;base64,`` URL (OpenAI ``image_url`` parts)."""
        import base64

        return "data:image/png;base64," + base64.b64encode(self.png_bytes()).decode("ascii")


def find_references(text: str) -> list[ImageReference]:
    """Every image named in ``text``, in order; a Markdown link counts once."""
    found: list[ImageReference] = []
    taken: list[tuple[int, int]] = []
    for match in _MARKDOWN.finditer(text):
        target = (match.group("angle") or match.group("plain") or "").strip()
        if Path(target.split("#", 1)[0].split("?", 1)[0]).suffix.lower() not in FORMATS:
            continue
        found.append(ImageReference(match.start(), match.end(), target))
        taken.append((match.start(), match.end()))
    for match in _BARE.finditer(text):
        if any(start <= match.start() < end for start, end in taken):
            continue
        found.append(ImageReference(match.start(), match.end(), match.group("path")))
    found.sort(key=lambda r: r.start)
    return found


def reference_at(line: str, character: int) -> ImageReference | None:
    """The image reference of ``line`` under ``character`` (its start up to its end,
    both ends included, as an editor's cursor may sit just after the name)."""
    for ref in find_references(line):
        if ref.start <= character <= ref.end:
            return ref
    return None


def resolve(target: str, document: Path | None, roots: Sequence[Path]) -> Path | None:
    """The file ``target`` names: relative to the document's folder, else to each
    workspace root (a leading "/" too, as Markdown sites use it). None for a URL, or
    when no candidate exists. Whether it may be read is ``read_image``'s question."""
    target = target.strip().split("#", 1)[0].split("?", 1)[0]
    if not target or (_SCHEME.match(target) and not re.match(r"^[A-Za-z]:[\\/]", target)):
        return None
    path = Path(target)
    candidates: list[Path] = []
    if path.is_absolute():
        candidates.append(path)
        relative = Path(*path.parts[1:]) if len(path.parts) > 1 else None
    else:
        relative = path
        if document is not None:
            candidates.append(document.parent / path)
    if relative is not None:
        candidates.extend(root / relative for root in roots)
    for candidate in candidates:
        if os.path.lexists(candidate):
            return candidate
    return None


def inside_roots(path: Path, roots: Sequence[Path]) -> Path:
    """``path`` with every link resolved, when it lies inside one of ``roots``;
    raises ``ImageRefused`` otherwise."""
    if not roots:
        raise ImageRefused("no workspace folder is open; images are read only inside one")
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # gone, or a symlink loop
        raise ImageRefused(f"{path.name} cannot be found") from None
    for root in roots:
        try:
            real_root = root.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if real == real_root or real_root in real.parents:
            return real
    raise ImageRefused(f"{path.name} lies outside the workspace folders")


def read_bytes(path: Path, roots: Sequence[Path], max_bytes: int) -> tuple[Path, bytes]:
    """The bytes of the regular file ``path`` inside ``roots``, at most ``max_bytes``."""
    real = inside_roots(path, roots)
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NONBLOCK", 0)  # a FIFO must not block the open
        | getattr(os, "O_NOCTTY", 0)
        | getattr(os, "O_NOFOLLOW", 0)  # swapped for a link since resolve: refuse
    )
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise ImageRefused(f"{path.name} cannot be opened ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageRefused(f"{path.name} is not a regular file")
        if info.st_size > max_bytes:
            raise ImageRefused(
                f"{path.name} is too large ({_size(info.st_size)}; the limit is {_size(max_bytes)})"
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ImageRefused(f"{path.name} cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # grew since fstat
        raise ImageRefused(f"{path.name} is too large (the limit is {_size(max_bytes)})")
    return real, data


def decode(data: bytes, name: str, limits: ImageLimits) -> tuple[str, int, int, Any]:
    """``(format, width, height, RGB image)`` from a PNG, JPEG, WebP or GIF file's bytes."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        # Pillow's own bomb check warns between its limit and twice it: refuse then too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=sorted(set(FORMATS.values())))
            width, height = img.size
            if width <= 0 or height <= 0:
                raise ImageRefused(f"{name} declares no pixels")
            if width * height > limits.max_pixels:
                raise ImageRefused(
                    f"{name} has too many pixels ({width}×{height}; the limit is "
                    f"{limits.max_pixels:,} pixels)"
                )
            fmt = img.format or "?"
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)  # GIF, animated WebP: the first frame
            if fmt == "JPEG":
                img.draft("RGB", (limits.max_side, limits.max_side))  # decode at a smaller scale
            img.load()
            rgb = _rgb(img)
        except ImageRefused:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRefused(f"{name} declares too many pixels") from None
        except UnidentifiedImageError:
            raise ImageRefused(f"{name} is not a PNG, JPEG, WebP or GIF image") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageRefused(f"{name} could not be decoded ({exc})") from None
    if max(rgb.size) > limits.max_side:
        rgb.thumbnail((limits.max_side, limits.max_side))
    return fmt, width, height, rgb


def read_image(path: Path, roots: Sequence[Path], limits: ImageLimits | None = None) -> LoadedImage:
    """Read and decode the image at ``path``; raises ``ImageRefused`` with the reason
    when it lies outside ``roots``, is not a regular file, is too large, or is not an
    image of an accepted format."""
    limits = limits or ImageLimits()
    if path.suffix.lower() not in FORMATS:
        raise ImageRefused(f"{path.name} is not a PNG, JPEG, WebP or GIF file")
    real, data = read_bytes(path, roots, limits.max_bytes)
    fmt, width, height, rgb = decode(data, path.name, limits)
    return LoadedImage(real, hashlib.sha256(data).hexdigest(), fmt, width, height, rgb)


def _rgb(img: Any) -> Any:
    """RGB, with any transparency laid over white (as a viewer shows it)."""
    from PIL import Image

    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n / 1000:.0f} kB"


def load_referenced(
    text: str,
    document: Path | None,
    roots: Sequence[Path],
    limits: ImageLimits | None = None,
    max_images: int = 2,
) -> tuple[list[LoadedImage], list[str]]:
    """The images ``text`` names (the code an action sends, a comment describing code
    to write), read as ``read_image`` reads them: at most ``max_images``, each file
    once, in order; and why each other one that exists was refused. For the actions
    that send images with code (explain, generate from a mockup): call it only when a
    vision model is set."""
    images: list[LoadedImage] = []
    refused: list[str] = []
    seen: set[Path] = set()
    for ref in find_references(text):
        if len(images) >= max_images:
            break
        path = resolve(ref.target, document, roots)
        if path is None or path in seen:
            continue
        seen.add(path)
        try:
            images.append(read_image(path, roots, limits))
        except ImageRefused as exc:
            refused.append(str(exc))
    return images, refused
