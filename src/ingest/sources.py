"""SOURCE arguments as streams of byte chunks: files, ``.gz`` files, ``-`` (stdin), http(s) URLs.

Chunks end on a line boundary (the last one may lack its newline), so the parser never sees a
split row. Memory is one chunk plus the partial line carried to the next.
"""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import BinaryIO

import httpx

CHUNK = 4 << 20
MAX_LINE = 1 << 20


class SourceError(OSError):
    """A SOURCE cannot be opened or read; the message names it and why."""


@dataclass
class Source:
    name: str
    size: int | None  # bytes on disk (compressed size for .gz), when known
    chunks: Iterator[bytes]  # raw bytes, in order
    progress: Callable[[], int]  # bytes consumed so far (same unit as size)


def _file_chunks(fh: BinaryIO, stack: ExitStack, chunk: int) -> Iterator[bytes]:
    with stack:
        while block := fh.read(chunk):
            yield block


def _lines(blocks: Iterator[bytes], name: str) -> Iterator[bytes]:
    """Re-cut blocks at their last newline; a line longer than MAX_LINE is not an export."""
    rest = b""
    for block in blocks:
        data = rest + block if rest else block
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            if len(rest) > MAX_LINE:
                raise SourceError(
                    f"{name}: a line longer than {MAX_LINE >> 20} MiB: not a CSV export"
                )
            continue
        rest = data[cut:]
        yield data[:cut]
    if rest:
        yield rest


def open_source(spec: str, *, chunk: int = CHUNK, timeout: float = 60.0) -> Source:
    if spec == "-":
        stdin = sys.stdin.buffer
        counter = [0]

        def stdin_blocks() -> Iterator[bytes]:
            while block := stdin.read(chunk):
                counter[0] += len(block)
                yield block

        return Source("<stdin>", None, _lines(stdin_blocks(), "<stdin>"), lambda: counter[0])
    if spec.startswith(("http://", "https://")):
        return _http_source(spec, chunk, timeout)
    if not os.path.exists(spec):
        raise SourceError(f"{spec}: no such file")
    if os.path.isdir(spec):
        raise SourceError(f"{spec}: is a directory")
    stack = ExitStack()
    try:
        raw = stack.enter_context(open(spec, "rb"))  # noqa: SIM115 - closed by the stack
    except OSError as exc:
        raise SourceError(f"{spec}: {exc.strerror}") from exc
    size = os.fstat(raw.fileno()).st_size
    fh: BinaryIO = raw
    if spec.endswith(".gz"):
        fh = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))  # type: ignore[assignment]

    consumed = [0]

    def blocks() -> Iterator[bytes]:
        try:
            for block in _file_chunks(fh, stack, chunk):
                consumed[0] = raw.tell()
                yield block
            consumed[0] = size
        except (OSError, EOFError) as exc:  # a corrupt .gz shows up while reading
            raise SourceError(f"{spec}: {exc}") from exc

    return Source(spec, size, _lines(blocks(), spec), lambda: consumed[0])


def _http_source(url: str, chunk: int, timeout: float) -> Source:
    client = httpx.Client(timeout=timeout, follow_redirects=True)
    try:
        resp = client.send(client.build_request("GET", url), stream=True)
    except httpx.HTTPError as exc:
        client.close()
        raise SourceError(f"{url}: {exc}") from exc
    if resp.status_code != 200:
        resp.close()
        client.close()
        raise SourceError(f"{url}: HTTP {resp.status_code}")
    size_header = resp.headers.get("Content-Length")
    counter = [0]
    gz = url.split("?")[0].endswith(".gz")

    def blocks() -> Iterator[bytes]:
        try:
            stream = resp.iter_raw(chunk) if gz else resp.iter_bytes(chunk)
            if gz:
                d = _gunzip()
                for block in stream:
                    counter[0] += len(block)
                    yield d(block)
                yield d(b"")
            else:
                for block in stream:
                    counter[0] = resp.num_bytes_downloaded
                    yield block
        except httpx.HTTPError as exc:
            raise SourceError(f"{url}: {exc}") from exc
        finally:
            resp.close()
            client.close()

    size = int(size_header) if size_header and size_header.isdigit() else None
    return Source(url, size, _lines(blocks(), url), lambda: counter[0])


def _gunzip() -> Callable[[bytes], bytes]:
    import zlib

    d = zlib.decompressobj(31)

    def feed(block: bytes) -> bytes:
        return d.decompress(block) if block else d.flush()

    return feed
