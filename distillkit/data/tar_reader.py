"""The tar shards' own reader: members from the 512-byte headers alone, samples grouped by key (WebDataset's
layout: ``<key>.jpg`` + ``<key>.cls``).  Used by :mod:`distillkit.data.shards` for local shard files and by
:mod:`distillkit.data.shard_sources` for counting them."""
from __future__ import annotations

from typing import Iterator, Optional, Tuple

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "ppm", "pgm", "tif", "tiff", "gif")


def split_key(name: str) -> Tuple[str, str]:
    """``'dir/000012.jpg'`` -> ``('dir/000012', 'jpg')`` (WebDataset: the key ends at the basename's first dot)."""
    slash = name.rfind("/") + 1
    dot = name.find(".", slash)
    return (name, "") if dot < 0 else (name[:dot], name[dot + 1:].lower())


def _octal(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 for large sizes
        return int.from_bytes(field[1:], "big")
    field = field.split(b"\0", 1)[0].strip()
    return int(field, 8) if field else 0


def tar_members(handle) -> Iterator[Tuple[str, int, int]]:
    """``(name, data offset, size)`` of the regular files of a tar stream, from its 512-byte headers alone
    (ustar, GNU long names and pax ``path``/``size`` records): a plain sequential scan, several times
    cheaper per member than ``tarfile``'s objects."""
    offset, long_name, pax = 0, None, {}
    while True:
        handle.seek(offset)
        header = handle.read(512)
        if len(header) < 512 or not header.strip(b"\0"):
            return
        size, kind = _octal(header[124:136]), header[156:157]
        data_at = offset + 512
        if kind in (b"L", b"x"):
            handle.seek(data_at)
            payload = handle.read(size)
            if kind == b"L":
                long_name = payload.rstrip(b"\0").decode("utf-8", "surrogateescape")
            else:
                for record in payload.decode("utf-8", "surrogateescape").split("\n"):
                    _, _, field = record.partition(" ")
                    key, _, value = field.partition("=")
                    if key in ("path", "size"):
                        pax[key] = value
            offset = data_at + (size + 511) // 512 * 512
            continue
        if "size" in pax:
            size = int(pax["size"])
        offset = data_at + (size + 511) // 512 * 512
        if kind == b"g":
            continue
        name = long_name or pax.get("path")
        if name is None:
            name = header[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            if prefix and header[257:262] == b"ustar":
                name = f"{prefix}/{name}"
        long_name, pax = None, {}
        if kind in (b"0", b"\0", b"7"):
            yield name, data_at, size


def read_shard(path: str, skip: int = 0, count: Optional[int] = None) -> Iterator[Tuple[str, bytes, int]]:
    """``(key, image bytes, class)`` of the samples of one shard, from sample ``skip`` on, ``count`` of them.
    Skipped samples' data is not read (only their headers)."""
    if count is not None and count <= 0:
        return
    yielded, index, key, image, label = 0, -1, None, None, None
    with open(path, "rb", buffering=1 << 20) as handle:
        for name, data_at, size in tar_members(handle):
            member_key, ext = split_key(name)
            if member_key != key:
                if key is not None and index >= skip:
                    yield sample_of(path, key, image, label)
                    yielded += 1
                    if count is not None and yielded >= count:
                        return
                key, image, label, index = member_key, None, None, index + 1
            if index < skip or not (ext == "cls" or ext in IMAGE_EXTENSIONS and image is None):
                continue
            handle.seek(data_at)
            data = handle.read(size)
            if ext == "cls":
                label = int(data.decode().strip())
            else:
                image = data
        if key is not None and index >= skip and (count is None or yielded < count):
            yield sample_of(path, key, image, label)


def sample_of(path, key, image, label):
    if image is None or label is None:
        raise ValueError(f"shard {path}: sample {key!r} lacks an image or a .cls member")
    return key, image, label
