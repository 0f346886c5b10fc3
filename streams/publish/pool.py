"""publish's worker processes: forked once, given tasks in turn, answered in the order given.

`multiprocessing.Pool` keeps three helper threads in the producing process, and its worker
handler also waits on the result queue, so it spins while a result waits to be read: ~0.5 s
of the producing process's CPU per 500k lines, and the GIL taken from the thread that
produces. Here that thread itself sends each worker its next task and reads the results in
order, and a result is the worker's bytes as they are (the pool pickled them once more).
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

# A result pipe this large takes a whole result (a block's records are about its input's
# size, 256 KiB) without the worker waiting for it to be read. Linux's default maximum.
PIPE_BYTES = 1 << 20
_END = object()


class WorkerError(RuntimeError):
    """A task raised in a worker (the message holds its traceback), or a worker died."""


class OrderedPool:
    """Forked workers running `work(task) -> bytes`; results come back in the tasks' order.

    Every worker gets tasks in turn, at most `ahead` of them queued. With `ahead` above 1 a
    worker starts its next task while its result waits to be read; that needs tasks small
    enough for the task pipe (file slices): a task the pipe cannot hold would wait for a
    worker that waits for its result to be read.
    """

    def __init__(self, work: Callable[[Any], bytes], processes: int) -> None:
        # Forked while other threads run (librdkafka's, in a long-lived process), a child may
        # inherit a lock one of them held (malloc's) and never get it: then the workers start
        # from a fresh server process instead, at the cost of their imports.
        context = get_context("fork") if forks_directly() else get_context("forkserver")
        self._workers: list[tuple[BaseProcess, Connection, Connection]] = []
        for _ in range(processes):
            task_reader, task_writer = context.Pipe(duplex=False)
            result_reader, result_writer = context.Pipe(duplex=False)
            _grow(result_writer)
            # The child closes the producing process's ends, its own and its elders': a
            # worker then sees the end of its tasks when the producing process goes.
            parent_ends = [end for _, *ends in self._workers for end in ends]
            process = context.Process(
                target=_serve,
                args=(work, task_reader, result_writer, [*parent_ends, task_writer, result_reader]),
                daemon=True,
            )
            process.start()
            task_reader.close()
            result_writer.close()
            self._workers.append((process, task_writer, result_reader))

    def imap(self, tasks: Iterable[Any], ahead: int = 1) -> Iterator[bytes]:
        """`work(task)` of every task, in the tasks' order."""
        tasks = iter(tasks)
        pending: deque[tuple[Connection, Connection]] = deque()
        primed = True
        for _ in range(ahead):
            for _, writer, reader in self._workers:
                primed = primed and _send(writer, tasks)
                if primed:
                    pending.append((writer, reader))
        while pending:
            writer, reader = pending.popleft()
            result = _receive(reader)
            if _send(writer, tasks):
                pending.append((writer, reader))
            yield result

    def close(self) -> None:
        """Stop every worker (a task under way is abandoned)."""
        for process, writer, reader in self._workers:
            process.terminate()
            writer.close()
            reader.close()
        for process, _, _ in self._workers:
            process.join()
        self._workers = []

    def __enter__(self) -> OrderedPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def forks_directly() -> bool:
    """Whether a pool made now forks its workers from this process, so they share its open
    files; from a fork server (other threads run) they share none."""
    return _threads() == 1


def _threads() -> int:
    """The threads of this process, native ones included."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # not Linux: trust the interpreter's count
        return threading.active_count()


def _grow(pipe: Connection) -> None:
    try:
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (OSError, AttributeError):  # above the user's limit, or not Linux: as it is
        pass


def _send(writer: Connection, tasks: Iterator[Any]) -> bool:
    task = next(tasks, _END)
    if task is _END:
        return False
    writer.send(task)
    return True


def _receive(reader: Connection) -> bytes:
    try:
        result = reader.recv_bytes()
        if not result:  # a failure: its traceback follows
            raise WorkerError(reader.recv_bytes().decode())
    except EOFError:
        raise WorkerError("a publish worker exited unexpectedly") from None
    return result


def _serve(
    work: Callable[[Any], bytes], tasks: Connection, results: Connection, others: list[Connection]
) -> None:
    """A worker's loop: a task in, its result out (an empty message and a traceback if the
    task raised), until the producing process closes the task pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the producing process's to handle
    for connection in others:
        connection.close()
    while True:
        try:
            task = tasks.recv()
        except EOFError:
            return
        try:
            result = work(task)
        except Exception:
            results.send_bytes(b"")
            results.send_bytes(traceback.format_exc().encode())
            continue
        results.send_bytes(result)
