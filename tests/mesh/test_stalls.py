"""Stalls explain themselves: an event loop that stops turning gets every thread's stack in the
log (in a child process: faulthandler's timer is process-wide)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import asyncio, time
    from mesh.stalls import watch_event_loop

    def stuck_here():
        time.sleep({block})  # blocks the loop's thread

    async def main():
        watch = asyncio.create_task(watch_event_loop(0.3))
        await asyncio.sleep(0.2)
        stuck_here()
        await asyncio.sleep(0.5)  # turning again: no second dump for the same stall
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
        time.sleep(0.6)  # cancelled: nothing armed any more

    asyncio.run(main())
""")


def run_child(block: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT.format(block=block)], capture_output=True, text=True, timeout=60)


def test_a_stuck_event_loop_dumps_every_thread_once():
    child = run_child(block=1.0)
    assert child.returncode == 0, child.stderr
    assert child.stderr.count("Timeout (0:00:00.300000)!") == 1
    assert 'in stuck_here' in child.stderr


def test_a_loop_that_keeps_turning_dumps_nothing():
    child = run_child(block=0.05)
    assert child.returncode == 0 and child.stderr == ""
