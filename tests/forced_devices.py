"""A Python snippet in a subprocess with N forced CPU devices (JAX fixes the device count when it
starts), launched at once so that it compiles and runs while the in-process tests do."""

import contextlib
import os
import subprocess
import sys


@contextlib.contextmanager
def started(code: str, devices: int):
    """Yield the running process; kill it on exit if it is still running."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=flags.strip())
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
