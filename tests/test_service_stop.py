"""Stopping and pipes: `fpagent run` stops within seconds of SIGTERM while kernels compile,
and a CLI command whose reader went away exits quietly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A stand-in for a first start's kernel compile: long, and not ended by a signal
# (time.sleep resumes after a handler runs, as a long C call would simply go on).
_RUN_WITH_SLOW_KERNELS = textwrap.dedent("""
    import pathlib, sys, time
    from fpagent import config
    from fpagent.service import daemon

    marker = pathlib.Path(sys.argv[2])

    def compile_kernels():
        marker.write_text("compiling")
        time.sleep(60)

    daemon.DEFAULT_WARMUPS = (compile_kernels,)
    cfg = config.from_dict({"paths": {"state_dir": sys.argv[1] + "/state",
                                      "cache_dir": sys.argv[1] + "/cache"},
                            "service": {"watchdog": False}})
    sys.exit(daemon.main(cfg))
""")


def test_sigterm_while_kernels_compile_stops_within_seconds(tmp_path):
    marker = tmp_path / "compiling"
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen([sys.executable, "-c", _RUN_WITH_SLOW_KERNELS, str(tmp_path),
                             str(marker)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the service never reached its kernels"
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert took < 5.0, f"took {took:.1f} s to stop"
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    assert b"Traceback" not in err


@pytest.mark.parametrize("argv", [["config", "show"], ["--help"]])
def test_a_closed_output_pipe_ends_the_command_quietly(tmp_path, argv):
    env = {**os.environ, "PYTHONPATH": ROOT, "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("FPAGENT_CONFIG", None)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written (`| head` that quit)
    proc = subprocess.run([sys.executable, "-m", "fpagent.cli", *argv], env=env,
                          stdout=write_end, stderr=subprocess.PIPE, timeout=60)
    os.close(write_end)
    assert b"Traceback" not in proc.stderr and b"BrokenPipeError" not in proc.stderr, \
        proc.stderr.decode(errors="replace")
    assert proc.returncode in (0, 141)
