"""publish's ordered pool: results in the tasks' order, failures raised in the caller."""

from __future__ import annotations

import os
import time

import pytest

from streams.publish.pool import OrderedPool, WorkerError


def _slow_echo(task: int) -> bytes:
    time.sleep((task * 7 % 5) / 1000)  # later tasks often finish first
    return f"{task}:{os.getpid()}".encode()


@pytest.mark.parametrize(("processes", "ahead"), [(1, 1), (3, 1), (3, 2), (2, 4)])
def test_results_come_back_in_the_tasks_order(processes: int, ahead: int) -> None:
    with OrderedPool(_slow_echo, processes) as pool:
        results = [r.decode().split(":") for r in pool.imap(range(40), ahead)]
    assert [int(task) for task, _ in results] == list(range(40))
    assert len({pid for _, pid in results}) == processes
    assert str(os.getpid()) not in {pid for _, pid in results}


def test_a_pool_takes_more_tasks_after_a_run_and_none_at_all() -> None:
    with OrderedPool(_slow_echo, 2) as pool:
        assert list(pool.imap([])) == []
        assert [r.split(b":")[0] for r in pool.imap(range(5), 2)] == [b"0", b"1", b"2", b"3", b"4"]


def _fail_on_three(task: int) -> bytes:
    if task == 3:
        raise ValueError("three is not allowed")
    return b"ok"


def test_a_task_that_raises_raises_in_the_caller_with_its_traceback() -> None:
    with OrderedPool(_fail_on_three, 2) as pool:
        results = pool.imap(range(6), 2)
        assert [next(results) for _ in range(3)] == [b"ok"] * 3
        with pytest.raises(WorkerError, match="three is not allowed"):
            next(results)


def _die_on_two(task: int) -> bytes:
    if task == 2:
        os._exit(3)
    return b"ok"


def test_a_worker_that_dies_is_an_error_not_a_hang() -> None:
    with OrderedPool(_die_on_two, 2) as pool, pytest.raises(WorkerError, match="exited"):
        list(pool.imap(range(6)))


def test_large_results_and_tasks_pass_whole() -> None:
    with OrderedPool(bytes, 2) as pool:
        sizes = [3_000_000, 1, 70_000, 2_000_000]
        assert [len(r) for r in pool.imap(sizes)] == sizes
