"""Where ``TarShards`` reads its shards from: a ``distillkit prepare`` folder, or WebDataset-style shard URLs.

``root`` is one of

* a folder holding ``index.json`` (written by ``distillkit prepare``);
* a shard pattern or list as WebDataset users write it: brace ranges and alternatives expanded by
  webdataset (``/data/shards/train-{000000..000146}.tar``; several patterns joined by ``::``), or a list of
  such strings. Each URL is a local path, ``file:``, ``pipe:CMD`` (the shard is CMD's standard output, e.g.
  ``pipe:aws s3 cp s3://bucket/train-000000.tar -``), ``s3://`` (streamed through ``aws s3 cp URL -``),
  ``http(s)://`` (through ``curl``), or any other scheme webdataset's ``gopen`` opens (``gs://``, ...).

An epoch's layout (shards.py) needs each shard's sample count. The counts come from ``index`` (a
``distillkit prepare`` index.json, or a WebDataset shard index ``{"shardlist": [{"url", "nsamples"}]}``; a
path or URL), else from an ``index.json`` beside local shards, else from reading every shard once when the
dataset is built (logged: over object storage that is a pass over the data; give ``index`` instead).

Reading: plain local paths go through the header-scan reader of shards.py (it seeks past the bytes it does
not need); every URL (``file:`` included) through webdataset: ``gopen`` and its tar iterator, front to back.
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import time
from typing import Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlparse

from ..errors import ConfigError
from .tar_reader import IMAGE_EXTENSIONS, read_shard, sample_of, split_key, tar_members

logger = logging.getLogger(__name__)

INDEX = "index.json"
EXTRA_HINT = "pip install 'distillkit[shards]' (or pip install webdataset)"


def webdataset(key_path: str = "params.root"):
    """The webdataset module, or a ConfigError naming the ``shards`` extra."""
    try:
        import webdataset as wds
    except ImportError:
        raise ConfigError("TarShards reads shard patterns and URLs (brace ranges, pipe:, s3://, http://) through "
                          "the webdataset library, which is not installed.", key_path=key_path,
                          hint=f"{EXTRA_HINT}; a folder written by 'distillkit prepare' reads without it.") from None
    return wds


def is_url(name: str) -> bool:
    """A ``scheme:`` URL (``pipe:``, ``file:``, ``s3:``, ...) rather than a local path (one-letter schemes are
    Windows drive letters)."""
    return name.startswith("pipe:") or len(urlparse(name).scheme) > 1


def expand(root, key_path: str) -> List[str]:
    """The shard URLs of a pattern (brace ranges, ``::``) or a list of patterns, in order."""
    wds = webdataset(key_path)
    patterns = [root] if isinstance(root, str) else list(root)
    urls = [url for pattern in patterns for url in wds.shardlists.expand_urls(os.path.expanduser(str(pattern)))]
    if not urls:
        raise ConfigError(f"the shard pattern {root!r} names no shards.", key_path=key_path)
    return urls


def stream_command(url: str) -> str:
    """What webdataset's ``gopen`` opens for ``url``: ``s3://`` and ``http(s)://`` become ``pipe:`` commands
    (AWS CLI, curl), which webdataset 1.x recommends and does not provide itself; the rest is passed on."""
    scheme = urlparse(url).scheme
    if scheme == "s3":
        return f"pipe:aws s3 cp --only-show-errors {shlex.quote(url)} -"
    if scheme in ("http", "https"):
        return f"pipe:curl --silent --show-error --fail --location --retry 3 {shlex.quote(url)}"
    return url


def open_stream(url: str):
    return webdataset().gopen(stream_command(url), "rb")


def read_stream(url: str, skip: int = 0, count: Optional[int] = None) -> Iterator[Tuple[str, bytes, int]]:
    """``(key, image bytes, class)`` of one shard read through webdataset, from sample ``skip`` on, ``count`` of
    them (a stream: skipped samples are read and dropped)."""
    from webdataset import tariterators

    if count is not None and count <= 0:
        return
    stream = open_stream(url)
    try:
        files = tariterators.tar_file_expander([{"url": url, "stream": stream}])
        for index, sample in enumerate(tariterators.group_by_keys(files)):
            if index < skip:
                continue
            image = next((sample[ext] for ext in sample if ext in IMAGE_EXTENSIONS), None)
            label = sample.get("cls")
            yield sample_of(url, sample["__key__"], image, None if label is None else int(label.decode().strip()))
            if count is not None and index + 1 - skip >= count:
                return
    finally:
        stream.close()


def read_samples(url: str, skip: int = 0, count: Optional[int] = None) -> Iterator[Tuple[str, bytes, int]]:
    """One shard's samples: local paths by the header-scan reader, URLs through webdataset."""
    return read_stream(url, skip, count) if is_url(url) else read_shard(url, skip, count)


def count_samples(url: str) -> int:
    """A shard's sample count, by reading it (a local shard: its tar headers only)."""
    if is_url(url):
        return sum(1 for _ in read_stream(url))
    with open(url, "rb", buffering=1 << 20) as handle:
        keys = [split_key(name)[0] for name, _, _ in tar_members(handle)]
    return sum(1 for k, key in enumerate(keys) if k == 0 or key != keys[k - 1])


def shard_name(url: str) -> str:
    """The file name a shard has in an index: the basename of the URL (of the ``.tar`` word of a ``pipe:``)."""
    if url.startswith("pipe:"):
        words = [word for word in shlex.split(url[5:]) if ".tar" in word]
        url = words[0] if words else url
    return os.path.basename(urlparse(url).path if is_url(url) else url)


def local_path(url: str) -> Optional[str]:
    """The local file a URL names (a plain path, ``file:``, or a ``pipe:`` word that is an existing file)."""
    if url.startswith("pipe:"):
        return next((word for word in shlex.split(url[5:]) if os.path.isfile(word)), None)
    if urlparse(url).scheme == "file":
        return urlparse(url).path
    return None if is_url(url) else url


def read_index(location: str, key_path: str) -> Tuple[Dict[str, int], List[str]]:
    """``({shard file name: sample count}, classes)`` of a distillkit index.json or a WebDataset shard index."""
    try:
        if is_url(location):
            with open_stream(location) as handle:
                index = json.loads(handle.read().decode())
        else:
            with open(os.path.expanduser(location)) as handle:
                index = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the shard index {location!r} could not be read: {exc}", key_path=key_path,
                          hint="A distillkit index.json (written by 'distillkit prepare') or a WebDataset shard "
                               "index {\"shardlist\": [{\"url\": ..., \"nsamples\": ...}]}.") from exc
    if "shardlist" in index:
        counts = {shard_name(s["url"]): int(s["nsamples"]) for s in index["shardlist"]}
    elif "shards" in index:
        counts = {s["name"]: int(s["count"]) for s in index["shards"]}
    else:
        raise ConfigError(f"the shard index {location!r} has neither 'shards' (distillkit) nor 'shardlist' "
                          f"(WebDataset).", key_path=key_path)
    return counts, list(index.get("classes") or [])


def indexed_counts(urls: List[str], index: Optional[str], key_path: str) -> Tuple[Dict[str, int], List[str]]:
    """``({url: sample count}, classes)`` for the URLs that ``index``, or an index.json beside them, lists."""
    if index is not None:
        counts, classes = read_index(index, f"{key_path}.index")
        return {url: counts[shard_name(url)] for url in urls if shard_name(url) in counts}, classes
    found, classes, folders = {}, [], {}
    for url in urls:
        path = local_path(url)
        if path is None:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if folder not in folders:
            beside = os.path.join(folder, INDEX)
            folders[folder] = read_index(beside, f"{key_path}.root") if os.path.isfile(beside) else ({}, [])
        counts, folder_classes = folders[folder]
        classes = classes or folder_classes
        if shard_name(url) in counts:
            found[url] = counts[shard_name(url)]
    return found, classes


def resolve(root, index: Optional[str], key_path: str) -> Tuple[List[Tuple[str, int]], List[str]]:
    """``([(url, sample count)], classes)`` of a shard pattern, list or URL (see the module's docstring)."""
    urls = expand(root, f"{key_path}.root")
    for url in urls:
        if not is_url(url) and not os.path.isfile(url):
            raise ConfigError(f"the shard {url!r} (from root {root!r}) does not exist.", key_path=f"{key_path}.root")
    counts, classes = indexed_counts(urls, index, key_path)
    missing = [url for url in urls if url not in counts]
    if missing:
        start = time.time()
        logger.info("TarShards (%s): counting the samples of %d shard(s) without an index, by reading them "
                    "(set %s.index to a distillkit index.json or a WebDataset shard index to skip this)",
                    key_path, len(missing), key_path)
        counts.update({url: count_samples(url) for url in missing})
        logger.info("TarShards (%s): counted in %.1f s", key_path, time.time() - start)
    return [(url, counts[url]) for url in urls], classes
