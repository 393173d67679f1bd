"""Tests of python-bounded, served over a real socketpair as the host
drives it, with the wslab package as installed (README.md):

    VENV/bin/python -B -m unittest discover -s examples/python-bounded
"""

import os
import socket
import tempfile
import threading
import time
import unittest

from wslab import control, keys, metrics
from wslab import executor_pb2 as pb
from wslab import frame
from wslab.log import Logger

import python_bounded

LIMITS = pb.Limits(max_fib_n=100_000, max_cpu_n=1_000_000_000, max_io_bytes=100_000_000, max_sleep_ms=100_000)
QUIET = Logger("test", "off")


class Host:
    """The host's end of the data channel to the strategy, served in a thread."""

    def __init__(self, concurrency):
        self.dir = tempfile.TemporaryDirectory()
        self.registry = metrics.Registry()
        self.strategy = python_bounded.BoundedStrategy(self.registry)
        settings = keys.apply({"python_bounded.concurrency": str(concurrency)}, self.strategy.keys)
        config = pb.Config(data_dir=self.dir.name, large_file_name="large_file.txt", limits=LIMITS)
        self.info = self.strategy.configure(control.Config(config, settings), QUIET)
        self.sock, theirs = socket.socketpair()
        self.thread = threading.Thread(target=self.strategy.serve, args=(theirs,))
        self.thread.start()
        self.buf = b""

    def send(self, *reqs):
        self.sock.sendall(b"".join(frame.encode(r) for r in reqs))

    def replies(self, count, timeout=10):
        self.sock.settimeout(timeout)
        out = {}
        while len(out) < count:
            while len(self.buf) < 4 or len(self.buf) < 4 + int.from_bytes(self.buf[:4], "big"):
                data = self.sock.recv(65536)
                if not data:
                    raise AssertionError(f"the channel ended after {len(out)} of {count} replies")
                self.buf += data
            size = int.from_bytes(self.buf[:4], "big")
            r = pb.ExecuteResponse.FromString(self.buf[4:4 + size])
            self.buf = self.buf[4 + size:]
            if r.seq in out:
                raise AssertionError(f"a second reply to task {r.seq}")
            out[r.seq] = r
        return out

    def close(self):
        """Ends the channel as the host does when it stops; the io files left."""
        self.sock.shutdown(socket.SHUT_WR)
        self.thread.join(10)
        alive = self.thread.is_alive()
        self.strategy.close()
        self.sock.close()
        left = os.listdir(self.dir.name)
        self.dir.cleanup()
        return alive, left


def task(seq, kind, n=0, timeout_ms=0, timing=False):
    return pb.ExecuteRequest(task=pb.Task(seq=seq, kind=kind, n=n, timeout_ms=timeout_ms, timing=timing))


def cancel(seq):
    return pb.ExecuteRequest(cancel=pb.Cancel(seq=seq))


class BoundedTest(unittest.TestCase):
    def serve(self, concurrency):
        h = Host(concurrency)
        self.addCleanup(lambda: self.assertEqual(h.close(), (False, []), "still serving, or io files left"))
        return h

    def test_declares_its_key(self):
        self.assertIsNone(keys.check(python_bounded.BoundedStrategy.keys))
        self.assertEqual(keys.apply({}, python_bounded.BoundedStrategy.keys)["python_bounded.concurrency"], "4")
        for bad in ("0", "1025", "many"):
            with self.assertRaisesRegex(keys.KeyValueError, r"^\[python_bounded\] concurrency: "):
                keys.apply({"python_bounded.concurrency": bad}, python_bounded.BoundedStrategy.keys)

    def test_every_kind(self):
        h = self.serve(2)
        self.assertEqual((h.info.name, h.info.concurrency, list(h.info.bounded_kinds)), ("python-bounded", 2, []))
        h.send(task(1, "fib", 90), task(2, "cpu", 1000), task(3, "io", 100_000), task(4, "sleep", 10),
               task(5, "noop"), task(6, "dance"), task(7, "fib", 10**6))
        r = h.replies(7)
        self.assertEqual([r[i].result for i in range(1, 6)], ["2880067194370816120", "499500", "100000",
                                                              "Request done", ""])
        self.assertEqual([r[i].error_code for i in range(1, 8)], [""] * 5 + ["unknown_task", "out_of_range"])
        self.assertEqual({r[i].worker for i in r}, {"bounded"})
        st = h.strategy.stats()
        self.assertEqual((st.completed, st.failed, st.running, st.queued, st.capacity), (5, 2, 0, 0, 2))

    def test_runs_no_more_than_its_bound(self):
        h = self.serve(2)
        start = time.monotonic()
        h.send(*(task(i, "sleep", 200) for i in range(1, 6)))
        time.sleep(0.1)
        st = h.strategy.stats()
        self.assertEqual((st.running, st.queued), (2, 3))
        r = h.replies(5)
        took = time.monotonic() - start
        self.assertEqual([r[i].error_code for i in range(1, 6)], [""] * 5)
        self.assertGreaterEqual(took, 0.58, "5 sleeps of 200 ms two at a time take three waves")
        # Those that waited say so; the first two did not wait a wave.
        self.assertLess(max(r[1].queue_us, r[2].queue_us), 100_000)
        self.assertGreaterEqual(min(r[i].queue_us for i in (3, 4, 5)), 180_000)
        # Arrival order: 3 and 4 had the first freed slots, 5 the next.
        self.assertGreater(r[5].queue_us, max(r[3].queue_us, r[4].queue_us) + 150_000)
        samples = self.registry_samples(h)
        self.assertEqual(samples["wslab_python_bounded_wait_seconds_count"], 5)
        self.assertGreater(samples["wslab_python_bounded_wait_seconds_sum"], 0.18 * 3)

    def test_a_waiting_task_cancelled_or_past_its_deadline_is_answered_at_once(self):
        h = self.serve(1)
        h.send(task(1, "sleep", 5000), task(2, "sleep", 5000), task(3, "sleep", 10, timeout_ms=150, timing=True),
               task(4, "noop"))
        time.sleep(0.05)
        before = time.monotonic()
        h.send(cancel(2))
        self.assertEqual(h.replies(1, timeout=1)[2].error_code, "shutting_down")
        r3 = h.replies(1, timeout=1)[3]
        self.assertEqual(r3.error_code, "timeout")
        self.assertLess(time.monotonic() - before, 0.5)
        self.assertEqual(set(r3.timing), {"plugin_recv", "plugin_sent"}, "the expired task ran")
        st = h.strategy.stats()
        self.assertEqual((st.running, st.queued), (1, 1))  # 1 runs; the noop still waits
        # The running sleep, cancelled, frees its slot for the noop.
        h.send(cancel(1))
        r = h.replies(2, timeout=1)
        self.assertEqual((r[1].error_code, r[4].error_code), ("shutting_down", ""))
        st = h.strategy.stats()
        self.assertEqual((st.running, st.queued, st.completed, st.failed), (0, 0, 1, 3))

    def test_a_task_cancelled_as_it_gets_its_slot_is_answered_and_frees_it(self):
        h = self.serve(1)
        # One read: 1 gets the slot and is cancelled before its turn begins.
        h.send(task(1, "sleep", 5000, timing=True), cancel(1), task(2, "noop"))
        r = h.replies(2, timeout=1)
        self.assertEqual((r[1].error_code, r[2].error_code), ("shutting_down", ""))
        self.assertEqual(set(r[1].timing), {"plugin_recv", "plugin_sent"}, "the cancelled task ran")
        st = h.strategy.stats()
        self.assertEqual((st.running, st.queued, st.completed, st.failed), (0, 0, 1, 1))

    def test_stopping_answers_every_task(self):
        h = self.serve(1)
        h.send(task(1, "sleep", 5000), task(2, "sleep", 5000))
        time.sleep(0.05)
        h.strategy.stop()
        r = h.replies(2, timeout=2)
        self.assertEqual((r[1].error_code, r[2].error_code), ("shutting_down", "shutting_down"))

    def registry_samples(self, h):
        out = {}
        for line in h.registry.encode().decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out


if __name__ == "__main__":
    unittest.main()
