"""The LSP output survives native code that writes to, or redirects, file descriptor 1.

llama-cpp-python points fds 1 and 2 at /dev/null while it loads a model; before
``transport.private_stdout`` every response the server wrote meanwhile vanished (VS
Code's status polls went unanswered and its status bar stayed at "loading"). Run in a
child process, since it rewires the process's own descriptors.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import os
    from mmlsp.lsp.transport import private_stdout

    out = private_stdout()
    out.write(b"first;")
    out.flush()
    os.write(1, b"stray bytes from native code")  # now the log stream, not the client's
    print("a stray print")
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # what llama-cpp-python does while it loads a model
    out.write(b"second;")
    out.flush()
    """
)


def test_lsp_output_survives_fd1_writes_and_redirects() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout == b"first;second;"
    assert b"stray bytes from native code" in proc.stderr
    assert b"a stray print" in proc.stderr
