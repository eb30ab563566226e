"""What an upload is (its bytes sniffed, never the client's word) and an
image's thumbnail, made on the master with Pillow.

An upload is an image only when its first bytes are those of PNG, JPEG,
GIF or WebP and Pillow reads it whole; anything else is
application/octet-stream (served as an attachment, never inline). An image
of more than MAX_PIXELS pixels is refused (a decompression bomb: a small
file that decodes to gigabytes) before it is decoded. Decoding is blocking
CPU work: `thumbnail` runs in a thread, one at a time (chatd.server.chat.file_ops).
"""

from __future__ import annotations

import io
import warnings

from PIL import Image

from chatd.contract import Code
from chatd.server.errors import RequestRefused

OCTET_STREAM = "application/octet-stream"
MAX_PIXELS = 25_000_000  # 5,000 x 5,000: about 100 MB decoded, at 4 bytes a pixel
THUMBNAIL_PX = 256  # a thumbnail's longer side at most
THUMBNAIL_TYPE = "image/png"
_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


def sniff(head: bytes) -> str:
    """The image type the first bytes say (the magic numbers), else octet-stream."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return OCTET_STREAM


def thumbnail(data: bytes, sniffed: str) -> tuple[str, bytes]:
    """(content type, thumbnail PNG) of an upload whose bytes sniffed as the
    image type `sniffed`: octet-stream and no thumbnail when Pillow cannot
    read it as that type; RequestRefused(INVALID_FILE) past MAX_PIXELS."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(_FORMATS)) as img:
                if _FORMATS.get(img.format or "") != sniffed:
                    return OCTET_STREAM, b""
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise RequestRefused(
                        Code.INVALID_FILE,
                        f"an image of {width} x {height} pixels: at most {MAX_PIXELS:,} "
                        "pixels are read",
                    )
                img.draft("RGB", (THUMBNAIL_PX, THUMBNAIL_PX))  # (JPEG: decoded smaller)
                img.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
                out = io.BytesIO()
                keep = "RGBA" if img.mode in ("RGBA", "LA", "P", "PA") else "RGB"
                img.convert(keep).save(out, "PNG", optimize=False)
                return sniffed, out.getvalue()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RequestRefused(
            Code.INVALID_FILE, f"an image of more than {MAX_PIXELS:,} pixels is refused"
        ) from exc
    except (OSError, ValueError, SyntaxError, EOFError):  # not an image Pillow reads
        return OCTET_STREAM, b""
