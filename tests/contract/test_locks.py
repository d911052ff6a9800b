"""Cache entries computed by several processes at once: one computes, the others wait."""

import subprocess
import sys
import time

from workbench.storage import exclusive

HOLDER = """
import sys, time
from workbench.storage import exclusive
with exclusive(sys.argv[1]):
    open(sys.argv[2], "w").write("held")
    time.sleep(1.0)
    open(sys.argv[2], "a").write(" released")
"""


def test_a_second_process_waits_for_the_first_to_release_the_lock(tmp_path):
    lock, log = tmp_path / "entry.lock", tmp_path / "log.txt"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(log)])
    deadline = time.time() + 60
    while not log.exists() and time.time() < deadline:
        time.sleep(0.01)
    assert log.exists(), "the holder never took the lock"
    with exclusive(lock):  # blocks until the holder's block ends
        seen = log.read_text()
    holder.wait(timeout=60)
    assert seen == "held released"
    with exclusive(lock):  # released: taken again at once
        pass
