#!/usr/bin/env python3
"""Copying from asyncio: the library is synchronous (no hidden event loop); run it in a
thread and cancel it with an Event. A copy that is cancelled leaves nothing behind.

    python examples/asyncio_copy.py SOURCE DESTINATION [TIMEOUT_SECONDS]
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from oci_image.copy import copy_image
from oci_image.errors import CopyCancelledError


async def copy_with_timeout(src: str, dst: str, timeout: float) -> str:
    cancel = threading.Event()
    task = asyncio.create_task(asyncio.to_thread(copy_image, src, dst, cancel=cancel))
    try:
        result = await asyncio.wait_for(asyncio.shield(task), timeout)
    except TimeoutError:
        cancel.set()  # the copy stops at its next read and removes what it wrote
        try:
            await task
        except CopyCancelledError:
            return "cancelled"
        return "finished just in time"
    return str(result.manifest_digest)


def main() -> None:
    src, dst = sys.argv[1:3]
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    print(asyncio.run(copy_with_timeout(src, dst, timeout)))


if __name__ == "__main__":
    main()
