"""Row ids and delivery ids: their shape, their randomness across threads and a fork."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

from hookline import ids


def _base36_reference(number: int, width: int) -> str:
    digits = ""
    for _ in range(width):
        number, rem = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[rem] + digits
    return digits


def test_base36_pairs_give_the_plain_digits() -> None:
    for number in (0, 1, 35, 36, 1295, 1296, 36**8 - 1, 2**41 - 1, 1_700_000_000_000):
        assert ids._eight(number) == _base36_reference(number, 8)


def test_a_row_id_is_25_characters_and_time_ordered() -> None:
    first = ids.new_id()
    time.sleep(0.002)
    second = ids.new_id()
    assert re.fullmatch(r"c[0-9a-z]{24}", first)
    assert first[:9] < second[:9]
    stamp = int(first[1:9], 36)
    assert abs(stamp - time.time() * 1000) < 5_000


def test_a_delivery_id_is_a_version_4_uuid() -> None:
    for _ in range(1000):
        text = ids.new_delivery_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_ids_never_repeat_across_threads() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out += [ids.new_id() for _ in range(5000)]
        out += [ids.new_delivery_id() for _ in range(5000)]

    threads = [threading.Thread(target=make, args=(out,)) for out in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [one for out in made for one in out]
    assert len(set(every)) == len(every) == 40_000
    # The random part is spread out, not a counter: all 36 digits appear in each position
    # but the first of each half (41 bits in eight digits leave that one fewer values).
    randoms = [one[9:] for out in made for one in out if len(one) == 25]
    for position in [*range(1, 8), *range(9, 16)]:
        assert len({one[position] for one in randoms}) == 36
    assert len({one[0] for one in randoms}) > 20 and len({one[8] for one in randoms}) > 20


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    ids.new_id()  # the parent's buffer holds unused random bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next ids and leave at once
        os.close(read)
        os.write(write, ",".join([ids.new_id(), ids.new_delivery_id()]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split(",")
    os.waitpid(pid, 0)
    parent = [ids.new_id(), ids.new_delivery_id()]
    assert child[0][9:] != parent[0][9:]
    assert child[1] != parent[1]
