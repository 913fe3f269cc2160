"""A publisher in its own OS process, for the concurrency test: `python -m tests.contract.publisher
URL USER OTHER COUNT` adds COUNT notifications to USER, every third one as a batch with OTHER."""

from __future__ import annotations

import asyncio
import sys

from tidings.models import Draft
from tidings.store import create_store


async def main(url: str, user: str, other: str, count: int) -> None:
    store = create_store(url)
    await store.open()
    try:
        for i in range(count):
            users = (user, other) if i % 3 == 2 else (user,)
            await store.add(Draft(user_ids=users, message=f"{i}"))
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
