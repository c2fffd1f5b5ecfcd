"""The writer lock: ``raysweep resume`` / ``sync`` wait for a killed sweep's writer process, which
still writes what it was sent, before reading MLflow (else a trial's run could be made twice)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid

from raysweep.tracking.writer_lock import _path, hold, release, wait_for_writer


def test_a_sweep_without_a_writer_is_not_waited_for():
    assert wait_for_writer(uuid.uuid4().hex, timeout=0.1)
    assert wait_for_writer(None, timeout=0.1)


def test_resume_waits_until_the_writer_process_ends_and_gives_up_on_one_that_does_not():
    run_id = uuid.uuid4().hex
    # A writer that finishes its queue for 1.5 s after its driver died, as the real one does on EOF.
    script = textwrap.dedent(f"""
        import sys, time
        from raysweep.tracking.writer_lock import hold
        lock = hold({run_id!r})
        print("held", flush=True)
        time.sleep(float(sys.argv[1]))
    """)
    writer = subprocess.Popen([sys.executable, "-c", script, "1.5"], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "held"
    said: list[str] = []
    started = time.monotonic()
    assert wait_for_writer(run_id, say=said.append, timeout=30)
    waited = time.monotonic() - started
    # The kernel frees the lock as the process exits, a moment before the process can be reaped:
    # the wait must have lasted the writer's 1.5 s, and the writer must then end at once.
    assert waited > 1.4, f"returned after {waited:.2f} s, while the writer still ran"
    assert writer.wait(timeout=5) == 0
    assert waited < 30 and said == ["raysweep: waiting for the sweep's earlier MLflow writer to write what it was sent"]

    stuck = subprocess.Popen([sys.executable, "-c", script, "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert stuck.stdout.readline().strip() == "held"
        assert not wait_for_writer(run_id, timeout=0.5)
    finally:
        stuck.kill()
        stuck.wait()
    assert wait_for_writer(run_id, timeout=5)  # a SIGKILLed writer leaves no lock behind
    mine = hold(run_id)
    assert mine is not None
    mine.close()


def test_a_writer_that_wrote_everything_removes_its_lock_file_and_a_waiter_does_not_make_it_again():
    # The temporary folder kept one empty lock file per sweep (over a thousand seen on one machine).
    run_id = uuid.uuid4().hex
    lock = hold(run_id)
    assert os.path.exists(_path(run_id))
    release(lock, run_id)
    assert not os.path.exists(_path(run_id)) and lock.closed
    assert wait_for_writer(run_id, timeout=0.1)
    assert not os.path.exists(_path(run_id))


def test_a_writer_waiting_on_one_that_releases_locks_the_file_it_finds_then():
    # The next writer of the same sweep (a resume) may open the file just before the earlier one
    # removes it: it must then lock a new file, or a third could lock the path beside it.
    run_id = uuid.uuid4().hex
    first = hold(run_id)
    script = textwrap.dedent(f"""
        import os
        from raysweep.tracking.writer_lock import _path, hold
        lock = hold({run_id!r})
        print(os.stat(_path({run_id!r})).st_ino == os.fstat(lock.fileno()).st_ino, flush=True)
    """)
    second = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)  # it has opened the file and waits for the lock
    release(first, run_id)
    out, _ = second.communicate(timeout=30)
    assert out.strip() == "True"


def test_sync_and_resume_are_refused_while_the_sweeps_own_process_lives_not_after_it_was_killed(tmp_path):
    """``sync`` during a running sweep closed its parent run KILLED, and the sweep, finishing a
    moment later, left it so (report: "did not finish"; resume: "complete"). The writer's lock names
    the sweep's process: while that lives, sync and resume are refused; once it is killed, only its
    writer is left finishing, and they wait for that as before."""
    import signal

    import pytest

    from raysweep.errors import UserError
    from raysweep.tracking.writer_lock import live_driver, refuse_while_running

    run_id = uuid.uuid4().hex
    # A sweep's process that starts its writer, as the real one does; the writer holds the lock.
    writer = textwrap.dedent(f"""
        import time
        from raysweep.tracking.writer_lock import hold
        lock = hold({run_id!r})
        print("held", flush=True)
        time.sleep(60)
    """)
    driver = textwrap.dedent(f"""
        import os, subprocess, sys, time
        # as raysweep.tracking.side_process.spawn starts it: with the id of the sweep's process
        env = {{**os.environ, "RAYSWEEP_SWEEP_PID": str(os.getpid())}}
        writer = subprocess.Popen([sys.executable, "-c", {writer!r}], stdout=subprocess.PIPE, text=True, env=env)
        print(writer.pid, writer.stdout.readline().strip(), flush=True)
        time.sleep(60)
    """)
    sweep = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, text=True)
    writer_pid = None
    try:
        writer_pid, held = sweep.stdout.readline().split()
        writer_pid = int(writer_pid)
        assert held == "held"
        assert live_driver(run_id) == sweep.pid
        with pytest.raises(UserError) as refused:
            refuse_while_running(run_id, "rf-iris", "sync")
        assert str(refused.value) == (
            f"sweep rf-iris is still running (process {sweep.pid}): sync it once it has stopped; "
            f"Ctrl-C in its terminal (or kill {sweep.pid}) stops it, resumable"
        )
        sweep.kill()  # SIGKILL: its writer lives on, finishing what it was sent
        sweep.wait()
        assert live_driver(run_id) is None
        refuse_while_running(run_id, "rf-iris", "resume")  # not refused: resume waits for the writer
    finally:
        sweep.kill()
        sweep.wait()
        if writer_pid:
            os.kill(writer_pid, signal.SIGKILL)
    assert live_driver(run_id) is None and live_driver(uuid.uuid4().hex) is None and live_driver(None) is None


def test_a_side_process_outlives_sigterm_and_ends_when_its_sweep_closes_the_pipe():
    """``ray job stop`` sends SIGTERM to the job's whole process tree: the writer died of it before
    the sweep had logged its stop ("the MLflow writer process was killed by SIGTERM" on the job's
    log, a new one started). The sweep handles the stop and then ends its side processes."""
    import pickle
    import signal

    from raysweep.tracking._writer_process import spawn

    process = spawn()
    try:
        pickle.dump(("ping", 7), process.stdin)
        process.stdin.flush()
        assert pickle.load(process.stdout) == (7, None)  # it answers: past its start
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert process.poll() is None, f"ended by SIGTERM ({process.returncode})"
        process.stdin.close()  # the sweep is done with it (or was killed itself)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
