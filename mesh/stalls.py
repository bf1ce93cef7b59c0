"""Hangs that explain themselves in the log.

A request that times out with nothing logged leaves an operator nothing to go on (the first run
of the inference service on a GPU did exactly that). Two views make a stall visible where it
happens:
- `watch_event_loop`: when the event loop stops turning for `stall_s`, the stack of every
  thread goes to stderr (the service's log). faulthandler does it from its own C thread, so it
  works while the loop, or the interpreter's lock, is held by whatever is stuck.
- `thread_stacks`: the Python stack of every other thread, as text, for a caller on a live loop
  that sees work elsewhere (a device thread) taking too long.
"""

from __future__ import annotations

import asyncio
import faulthandler
import sys
import threading
import traceback


async def watch_event_loop(stall_s: float) -> None:
    """Re-arm faulthandler's dump every quarter of `stall_s` while this loop turns; a loop that
    stops turning for `stall_s` gets one dump per stall. Runs until cancelled."""
    out = sys.__stderr__  # the process's fd 2, even where sys.stderr is replaced (test capture)
    if stall_s <= 0 or out is None:
        return
    try:
        while True:
            faulthandler.dump_traceback_later(stall_s, repeat=False, file=out)
            await asyncio.sleep(stall_s / 4)
    finally:
        faulthandler.cancel_dump_traceback_later()


def thread_stacks() -> str:
    """Every thread's Python stack except the caller's, most recent call last."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    me = threading.get_ident()
    return "\n".join(
        f"thread {names.get(ident, ident)}:\n{''.join(traceback.format_stack(frame)).rstrip()}"
        for ident, frame in sys._current_frames().items()  # the documented way to read other threads' frames
        if ident != me
    )
