"""Tests of the wslab Python package: the workloads against the values Go's
tasks package gives, the framing, the keys' checks in the host's words, the
trace context, and both strategies served over a real socketpair, as the
host drives them.

    /usr/bin/python3 -m unittest discover -s plugins/python
"""

import os
import re
import socket
import tempfile
import threading
import time
import unittest

from wslab import aio, frame, keys, pool, tasks, trace, worker
from wslab import executor_pb2 as pb
from wslab.log import Logger
from wslab.control import Config

# A timeline's stages, in the order a task passes them.
STAGES = ("plugin_recv", "task_start", "task_end", "plugin_sent")
LIMITS = pb.Limits(max_fib_n=100_000, max_cpu_n=1_000_000_000, max_io_bytes=100_000_000, max_sleep_ms=100_000)
QUIET = Logger("test", "off")


class TasksTest(unittest.TestCase):
    def test_results_are_go_s(self):
        # tasks/tasks_test.go and the README's example.
        self.assertEqual(tasks.run("fib", 0), "0")
        self.assertEqual(tasks.run("fib", 1), "1")
        self.assertEqual(tasks.run("fib", 90), "2880067194370816120")
        self.assertEqual(len(tasks.run("fib", 100_000)), 20899)
        self.assertEqual(tasks.run("cpu", 1_000_000), "499999500000")
        self.assertEqual(tasks.run("cpu", 0), "0")
        self.assertEqual(tasks.run("noop", 0), "")
        self.assertEqual(tasks.run("sleep", 1), "Request done")

    def test_io_writes_reads_back_and_removes(self):
        with tempfile.TemporaryDirectory() as d:
            for n in (0, 1, 65536, 65537, 1_000_000):
                path = tasks.io_path(d, "large_file.txt")
                self.assertEqual(tasks.run("io", n, path), str(n))
                self.assertEqual(os.listdir(d), [])

    def test_io_file_names_are_go_s(self):
        # tasks/io_test.go: FuzzFilePattern's seeds and TestFilePattern.
        cases = {"large_file.txt": "large_file-*.txt", "../../etc/passwd": "passwd-*", "name": "name-*",
                 "archive.tar.gz": "archive.tar-*.gz", "": "large_file-*.txt", "/": "large_file-*.txt",
                 "//": "large_file-*.txt", ".": "large_file-*.txt", "a*b.txt": "ab-*.txt",
                 "*large*.t*xt": "large-*.txt", "dir*/x*.log": "x-*.log", "trailing/": "trailing-*"}
        for name, want in cases.items():
            got = os.path.basename(tasks.io_path("/data", name))
            self.assertRegex(got, "^" + re.escape(want).replace(r"\*", "[0-9a-f]{16}") + "$", name)
            self.assertEqual(os.path.dirname(tasks.io_path("/data", name)), "/data")

    def test_checks(self):
        tasks.check("fib", 100_000, LIMITS)
        with self.assertRaises(tasks.TaskError) as e:
            tasks.check("fib", 100_001, LIMITS)
        self.assertEqual((e.exception.code, e.exception.message),
                         ("out_of_range", "fib n must be between 0 and 100000, got 100001"))
        with self.assertRaises(tasks.TaskError) as e:
            tasks.check("dance", 1, LIMITS)
        self.assertEqual(e.exception.code, "unknown_task")
        with self.assertRaises(tasks.TaskError):
            tasks.check("sleep", -1, LIMITS)

    def test_deadline_stops_a_long_task(self):
        start = time.monotonic()
        with self.assertRaises(tasks.TaskError) as e:
            tasks.cpu(10**10, deadline=start + 0.05)
        self.assertEqual(e.exception.code, "timeout")
        self.assertLess(time.monotonic() - start, 1)


class FrameTest(unittest.TestCase):
    def test_frames_split_anywhere(self):
        reqs = [pb.ExecuteRequest(task=pb.Task(seq=i, kind="fib", n=i)) for i in range(1, 50)]
        data = b"".join(frame.encode(r) for r in reqs)
        for step in (1, 3, 7, len(data)):
            d, got = frame.Decoder(), []
            for i in range(0, len(data), step):
                got += d.feed(data[i:i + step])
            self.assertEqual(got, reqs)

    def test_oversized_frame_breaks_the_channel(self):
        with self.assertRaises(frame.FrameError):
            frame.Decoder().feed((frame.MAX_FRAME + 1).to_bytes(4, "big"))

    def test_outbox_stamps_timed_replies_when_taken(self):
        plain = frame.reply(1, "x")
        self.assertIsInstance(plain, bytes)
        out = frame.Outbox()
        out.add(plain)
        out.add(frame.reply(2, "y", timing={"plugin_recv": 5}))
        before = monotonic_ns()
        data = out.take()
        after = monotonic_ns()
        self.assertFalse(out)
        self.assertEqual(data[:len(plain)], plain)
        m = pb.ExecuteResponse.FromString(data[len(plain) + 4:])
        self.assertEqual((m.seq, m.result, set(m.timing)), (2, "y", {"plugin_recv", "plugin_sent"}))
        self.assertTrue(before <= m.timing["plugin_sent"] <= after)


class KeysTest(unittest.TestCase):
    def test_values_in_the_host_s_words(self):
        k = pool.PROCESSES
        self.assertEqual(keys.apply({}, [k])[k.id], "4")
        self.assertEqual(keys.apply({k.id: " 8 "}, [k])[k.id], "8")
        for value, problem in (("0", "must be a whole number between 1 and 1024, got 0"),
                               ("x", '"x" is not a whole number, must be a whole number between 1 and 1024'),
                               ("1_0", '"1_0" is not a whole number, must be a whole number between 1 and 1024'),
                               ("99999999999999999999", '"99999999999999999999" is out of range, '
                                                        'must be a whole number between 1 and 1024')):
            with self.assertRaises(keys.KeyValueError) as e:
                keys.apply({k.id: value}, [k])
            self.assertEqual(str(e.exception), "[other] multiprocessing_processes: " + problem)


# A traceparent W3C's examples use.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class Recorder(Logger):
    """A logger that keeps its entries: (level, message, fields)."""

    def __init__(self):
        super().__init__("test", "trace")
        self.entries = []

    def log(self, level, message, **kv):
        self.entries.append((level, message, kv))


class TraceTest(unittest.TestCase):
    def test_well_formed(self):
        self.assertEqual(trace.trace_id(TRACEPARENT), TRACE_ID)
        self.assertEqual(trace.trace_id(f"00-{TRACE_ID}-00f067aa0ba902b7-00"), TRACE_ID)
        # A later version may carry more, after a dash.
        self.assertEqual(trace.trace_id(f"01-{TRACE_ID}-00f067aa0ba902b7-09-more"), TRACE_ID)
        self.assertEqual(trace.log_fields(TRACEPARENT), {"trace_id": TRACE_ID})

    def test_malformed(self):
        for tp in ("", None, 42, "00", TRACEPARENT + "\n", TRACEPARENT + "-x", TRACEPARENT.upper(),
                   " " + TRACEPARENT, TRACEPARENT[:-1], TRACEPARENT.replace("-", "_"),
                   f"00-{'0' * 32}-00f067aa0ba902b7-01", f"00-{TRACE_ID}-{'0' * 16}-01",
                   f"ff-{TRACE_ID}-00f067aa0ba902b7-01", f"00-{TRACE_ID}-00f067aa0ba902b7-ff",
                   f"01-{TRACE_ID}-00f067aa0ba902b7-01x", f"0g-{TRACE_ID}-00f067aa0ba902b7-01",
                   f"00-{TRACE_ID[:-1]}z-00f067aa0ba902b7-01", f"00-{TRACE_ID}-00f067aa0ba902b7-0\u0661",
                   "00-" + "\u0661" * 32 + "-00f067aa0ba902b7-01", "x" * 100_000):
            self.assertEqual(trace.trace_id(tp), "", repr(tp))
            self.assertEqual(trace.log_fields(tp), {}, repr(tp))

    def test_task_carries_it(self):
        for tp, fields in ((TRACEPARENT, {"trace_id": TRACE_ID}), ('00-"evil"\n', {}), ("", {})):
            t = frame.Task(pb.Task(seq=7, kind="fib", n=3, traceparent=tp))
            self.assertEqual(t.traceparent, tp, "passed on as it came")
            self.assertEqual(t.log_fields(), {"seq": 7, "kind": "fib", **fields})
        made_up = frame.Task(pb.Task(seq=8, kind="made up\n" * 10))
        self.assertEqual(made_up.log_fields(), {"seq": 8, "kind": "other"})

    def test_duplicate_seq_logs_its_trace(self):
        log = Recorder()
        jobs = {5: object()}
        requests = frame.Requests(jobs, tasks.Bounds(LIMITS), log, None, None, None)
        requests.handle(pb.ExecuteRequest(task=pb.Task(seq=5, kind="noop", traceparent=TRACEPARENT)))
        requests.handle(pb.ExecuteRequest(task=pb.Task(seq=5, kind="noop", traceparent="00-forged\n-line")))
        self.assertEqual([e[2] for e in log.entries],
                         [{"seq": 5, "kind": "noop", "trace_id": TRACE_ID}, {"seq": 5, "kind": "noop"}])

    def test_worker_logs_a_failed_task_s_trace(self):
        log = Recorder()
        missing = os.path.join(tempfile.gettempdir(), "wslab-no-such-dir-" + os.urandom(8).hex(), "f.txt")
        seq, value, code, message, _, stamps = worker.run((3, "io", 10, missing, False, TRACEPARENT), "w1", log)
        self.assertEqual((seq, value, code, stamps), (3, "", "internal", None))
        self.assertEqual(len(log.entries), 1)
        level, msg, kv = log.entries[0]
        self.assertEqual((level, msg, kv["worker"], kv["seq"], kv["kind"], kv["trace_id"]),
                         ("warn", "task failed", "w1", 3, "io", TRACE_ID))
        self.assertIn("create file", kv["error"])
        # A malformed traceparent leaves no trace in the line; a task that ran leaves no line.
        worker.run((4, "io", 10, missing, False, "00-" + "a" * 52 + "\n"), "w1", log)
        self.assertNotIn("trace_id", log.entries[1][2])
        self.assertNotIn("aaaa", repr(log.entries[1]))
        self.assertEqual(worker.run((5, "fib", 10, None, True, TRACEPARENT), "w1", log)[:3], (5, "55", ""))
        self.assertEqual(len(log.entries), 2)


class Host:
    """The host's end of a data channel to a strategy served in a thread."""

    def __init__(self, strategy, settings=None):
        self.dir = tempfile.TemporaryDirectory()
        config = pb.Config(data_dir=self.dir.name, large_file_name="large_file.txt", limits=LIMITS)
        strategy.configure(Config(config, keys.apply(settings or {}, strategy.keys)), QUIET)
        self.strategy = strategy
        self.sock, self.theirs = socket.socketpair()
        self.thread = threading.Thread(target=strategy.serve, args=(self.theirs,))
        self.thread.start()
        self.buf = b""

    def send(self, *reqs):
        self.sock.sendall(b"".join(frame.encode(r) for r in reqs))

    def replies(self, count, timeout=10):
        self.sock.settimeout(timeout)
        out = []
        while len(out) < count:
            while len(self.buf) < 4 or len(self.buf) < 4 + int.from_bytes(self.buf[:4], "big"):
                self.buf += self.sock.recv(65536)
            size = int.from_bytes(self.buf[:4], "big")
            out.append(pb.ExecuteResponse.FromString(self.buf[4:4 + size]))
            self.buf = self.buf[4 + size:]
        return {r.seq: r for r in out}

    def close(self):
        self.sock.shutdown(socket.SHUT_WR)  # EOF: the strategy stops
        self.thread.join(10)
        self.strategy.close()
        self.sock.close()
        self.theirs.close()
        left = os.listdir(self.dir.name)
        self.dir.cleanup()
        return left


def task(seq, kind, n=0, timeout_ms=0, timing=False, traceparent=""):
    return pb.ExecuteRequest(task=pb.Task(seq=seq, kind=kind, n=n, timeout_ms=timeout_ms, timing=timing,
                                          traceparent=traceparent))


def monotonic_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def cancel(seq):
    return pb.ExecuteRequest(cancel=pb.Cancel(seq=seq))


class StrategyCases:
    """The contract's cases, for each strategy."""

    def make(self):
        raise NotImplementedError

    def setUp(self):
        self.host = Host(self.make())

    def tearDown(self):
        self.assertEqual(self.host.close(), [], "io files left behind")

    def test_every_kind_once(self):
        self.host.send(task(1, "fib", 90), task(2, "cpu", 1000), task(3, "io", 100_000), task(4, "sleep", 10),
                       task(5, "noop"), task(6, "dance"), task(7, "fib", 10**6))
        r = self.host.replies(7)
        self.assertEqual([r[i].result for i in range(1, 6)], ["2880067194370816120", "499500", "100000",
                                                              "Request done", ""])
        self.assertEqual((r[6].error_code, r[7].error_code), ("unknown_task", "out_of_range"))

    def test_cancel_and_deadline(self):
        self.host.send(task(1, "sleep", 5000), task(2, "sleep", 5000, timeout_ms=100))
        time.sleep(0.2)
        self.host.send(cancel(1), cancel(99))
        r = self.host.replies(2, timeout=3)
        self.assertEqual((r[1].error_code, r[2].error_code), ("shutting_down", "timeout"))
        self.host.send(task(3, "noop"))
        self.assertEqual(self.host.replies(1)[3].error_code, "")

    def test_timeline(self):
        before = monotonic_ns()
        self.host.send(task(1, "sleep", 20, timing=True), task(2, "fib", 90, timing=True), task(3, "fib", 90),
                       task(4, "dance", timing=True), task(5, "sleep", 5000, timing=True))
        time.sleep(0.2)
        # 5 is stopped while it runs; 6 before it starts (the same read).
        self.host.send(cancel(5), task(6, "sleep", 5000, timing=True), cancel(6))
        r = self.host.replies(6)
        after = monotonic_ns()
        self.assertEqual(([r[i].error_code for i in range(1, 7)]),
                         ["", "", "", "unknown_task", "shutting_down", "shutting_down"])
        self.assertEqual(dict(r[3].timing), {}, "a task that did not ask got a timeline")
        reached = {1: STAGES, 2: STAGES, 4: ("plugin_recv", "plugin_sent"), 5: STAGES,
                   6: ("plugin_recv", "plugin_sent")}
        for seq, stages in reached.items():
            tl = dict(r[seq].timing)
            self.assertEqual(set(tl), set(stages), f"task {seq}'s stages")
            at = [tl[s] for s in stages]
            self.assertEqual(at, sorted(at), f"task {seq}'s stages out of order: {tl}")
            self.assertTrue(before <= at[0] and at[-1] <= after, f"task {seq}'s stages outside the test's "
                                                                 f"[{before}, {after}]: {tl}")
        # The task's own stages are where it ran: the 20 ms sleep is between.
        self.assertGreaterEqual(r[1].timing["task_end"] - r[1].timing["task_start"], 15_000_000)
        self.assertGreaterEqual(r[5].timing["task_end"] - r[5].timing["task_start"], 100_000_000)


class AsyncioTest(StrategyCases, unittest.TestCase):
    def make(self):
        return aio.AsyncioStrategy()


class Recording:
    """A worker's pipe that keeps what the plugin sends on it."""

    def __init__(self, conn, sent):
        self._conn, self._sent = conn, sent

    def send(self, obj):
        self._sent.append(obj)
        self._conn.send(obj)

    def __getattr__(self, name):
        return getattr(self._conn, name)


class MultiprocessingTest(StrategyCases, unittest.TestCase):
    def make(self):
        s = pool.MultiprocessingStrategy()
        s.prepare(QUIET)
        return s

    def test_the_trace_context_goes_to_the_worker_unchanged(self):
        sent = []
        for slot in self.host.strategy._slots:
            slot.conn = Recording(slot.conn, sent)
        odd = "00-not-a-trace-context-but-passed-on-as-it-came"
        self.host.send(task(1, "fib", 10, traceparent=TRACEPARENT), task(2, "noop", traceparent=odd), task(3, "noop"))
        self.host.replies(3)
        self.assertEqual(sorted((m[0], m[-1]) for m in sent), [(1, TRACEPARENT), (2, odd), (3, "")])

    def test_a_killed_worker_fails_its_task_and_is_replaced(self):
        log = Recorder()
        self.host.strategy._log = log
        self.host.send(task(1, "sleep", 5000, traceparent=TRACEPARENT))
        time.sleep(0.3)
        busy = [w for w in self.host.strategy.stats().workers if w.state == "busy"]
        os.kill(busy[0].pid, 9)
        r = self.host.replies(1, timeout=3)
        self.assertEqual(r[1].error_code, "executor_failed")
        died = [kv for _, msg, kv in log.entries if msg == "worker died, restarting it"]
        self.assertEqual([(kv["seq"], kv["trace_id"]) for kv in died], [(1, TRACE_ID)])
        time.sleep(0.3)  # the backoff
        st = self.host.strategy.stats()
        self.assertEqual((st.restarts, len(st.workers), {w.state for w in st.workers}), (1, 4, {"idle"}))

    def test_cancelled_queued_tasks_leave_room(self):
        self.host.send(*(task(i, "sleep", 5000) for i in range(1, 5)))  # every worker busy
        time.sleep(0.3)
        self.assertEqual(self.host.strategy.stats().running, 4)
        saved, pool.MAX_QUEUED = pool.MAX_QUEUED, 2
        try:
            for base in range(100, 300, 2):  # each queued, then cancelled
                self.host.send(task(base, "sleep", 5000), task(base + 1, "sleep", 5000), cancel(base),
                               cancel(base + 1))
                r = self.host.replies(2)
                self.assertEqual({r[base].error_code, r[base + 1].error_code}, {"shutting_down"})
            # The dead entries are dropped from the queue, not kept until dispatch.
            self.assertLess(len(self.host.strategy._queue), 100)
            self.host.send(task(1000, "noop"), task(1001, "noop"), task(1002, "noop"))
            self.assertEqual(self.host.replies(1)[1002].error_code, "overloaded")
        finally:
            pool.MAX_QUEUED = saved

    def test_a_stopped_io_task_leaves_no_file(self):
        self.host.send(task(1, "io", 100_000_000, timeout_ms=30))
        self.assertEqual(self.host.replies(1)[1].error_code, "timeout")


if __name__ == "__main__":
    unittest.main()
