"""OpenVINO Cores released out of order must not leave a dangling signal stack behind.

The failure is a crash, so each case runs in its own Python process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signal stacks are pinned on Linux only")

OUT_OF_ORDER_CORES = """
    import os, signal
    import openvino as ov
    from hema.runtime.engines.signal_stack import SIGNAL_STACK_BYTES, current_signal_stack, signal_stack_kept

    def mapped(address):
        for line in open("/proc/self/maps"):
            low, high = (int(part, 16) for part in line.split()[0].split("-"))
            if low <= address < high:
                return True
        return False

    with signal_stack_kept():
        first, second = ov.Core(), ov.Core()
        for core in (first, second):
            core.get_property("CPU", "FULL_DEVICE_NAME")  # loads a CPU plugin into each Core
        del first, second  # released in the order they were made
        left = current_signal_stack()
        print("dangling" if left and not mapped(left[0]) else "valid", flush=True)
    address, size = current_signal_stack()
    assert mapped(address) and size == SIGNAL_STACK_BYTES, (hex(address), size)
    signal.signal(signal.SIGUSR1, lambda *_: print("handled", flush=True))
    os.kill(os.getpid(), signal.SIGUSR1)
"""


def test_a_signal_after_out_of_order_cores_is_handled() -> None:
    pytest.importorskip("openvino")
    run = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(OUT_OF_ORDER_CORES)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.split()
    assert lines[-1] == "handled"
    # What OpenVINO did inside the block: "dangling" reproduces the bug this guards against (2026.x).
    assert lines[0] in {"dangling", "valid"}


def test_each_thread_gets_its_own_stack() -> None:
    script = textwrap.dedent("""
        import threading
        from hema.runtime.engines.signal_stack import current_signal_stack, pin_signal_stack

        stacks, all_pinned = [], threading.Barrier(3)
        def pin():
            pin_signal_stack()
            pin_signal_stack()  # pinning again keeps the same memory
            stacks.append(current_signal_stack())
            all_pinned.wait(timeout=30)
        threads = [threading.Thread(target=pin) for _ in range(2)]
        for thread in threads:
            thread.start()
        pin()
        for thread in threads:
            thread.join()
        print(len(stacks), len({address for address, _ in stacks}))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["3", "3"]
