"The notebook runner's waits on the kernel: a missed wake-up costs one slice, not the cell timeout (nbclient#312)."
import asyncio
from queue import Empty
import pytest
from course_lib.teach.notebooks import slice_waits


class _LostWakeupChannel:
    """A kernel channel whose waits miss their wake-up (jupyter/nbclient#312): a message that is waiting is found only
    when a wait times out, and a wait without a timeout never ends."""
    def __init__(self, message=None): self.message, self.waits = message, []
    async def get_msg(self, timeout=None):
        self.waits.append(timeout)
        if timeout is None: await asyncio.Event().wait()
        await asyncio.sleep(timeout)
        if self.message is None: raise Empty
        return self.message


def test_sliced_waits_find_a_waiting_message_after_one_slice_not_after_the_timeout():
    for timeout in (600, None):                     # the shell channel's cell timeout; the iopub channel's forever
        ch = slice_waits(_LostWakeupChannel({'msg': 'reply'}), step=0.01)
        assert asyncio.run(asyncio.wait_for(ch.get_msg(timeout=timeout), 5)) == {'msg': 'reply'}
        assert ch.waits == [0.01]                   # unsliced, the first wait would have been 600 s, or endless


def test_sliced_waits_still_time_out_with_empty_and_reject_a_bad_step():
    ch = slice_waits(_LostWakeupChannel(), step=0.01)
    with pytest.raises(Empty): asyncio.run(asyncio.wait_for(ch.get_msg(timeout=0.05), 5))
    assert len(ch.waits) >= 2 and all(w <= 0.01 for w in ch.waits) and sum(ch.waits) >= 0.04
    with pytest.raises(ValueError, match='step must be > 0'): slice_waits(_LostWakeupChannel(), step=0)
    class Blocking:
        def get_msg(self, timeout=None): return 'sync'
    sync = Blocking(); slice_waits(sync)
    assert sync.get_msg() == 'sync' and 'get_msg' not in vars(sync)    # a blocking channel is left as it was
