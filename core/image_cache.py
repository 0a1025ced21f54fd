"""Decode each file content once: a small thread-safe cache keyed on a hash of the file's bytes.

Keying on the content (not the name or modification time) means a file replaced by another one,
even with the same name and time, is never answered from the old file's pixels.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

from core.imaging import XrayImage, decode_xray, read_file_bytes

MAX_ITEMS = 8
MAX_BYTES = 512 * 1024 * 1024  # decoded pixels held at most (float32: ~130 Mpx in all)


class ImageCache:
    """Least-recently-used decoded images, bounded by count and by bytes; safe across threads."""

    def __init__(self, max_items: int = MAX_ITEMS, max_bytes: int = MAX_BYTES) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: OrderedDict[bytes, XrayImage] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, path: str | Path) -> XrayImage:
        """Read `path` and return its decoded image, decoding only content not seen recently.

        Raises the typed errors of `core.imaging.load_xray`; failures are never cached.
        """
        return self.decode(read_file_bytes(path), Path(path).name)

    def decode(self, data: bytes, name: str) -> XrayImage:
        """The decoded image of a file's bytes (`name` only for messages), from the cache when
        the same content was decoded recently."""
        key = hashlib.sha256(data).digest()
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        image = decode_xray(data, name)
        self._store(key, image)
        return image

    def _store(self, key: bytes, image: XrayImage) -> None:
        size = image.pixels.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            self._items[key] = image
            self._items.move_to_end(key)
            while len(self._items) > self.max_items or self.held_bytes() > self.max_bytes:
                self._items.popitem(last=False)

    def held_bytes(self) -> int:
        """Bytes of decoded pixels currently held."""
        return sum(item.pixels.nbytes for item in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        """Forget every decoded image."""
        with self._lock:
            self._items.clear()
