"""Notebook kernels forked from a process that has already imported the libraries, as tests/cli_forks.py does for
`tunekit` runs: a fresh kernel pays the same seconds of imports (torch, transformers, trl, peft, datasets, the
panels) on its first ``import tunekit``, and the notebook tests start one per notebook.

    python tests/kernel_forks.py --serve SOCKET           # imports, then forks one kernel per connection
    python tests/kernel_forks.py --launch SOCKET ARGS...  # what jupyter_client starts instead of ipykernel_launcher

The launcher is the process jupyter_client manages. It imports nothing heavy: it connects to the server and hands
over its standard streams, environment, working folder and the kernel's arguments (``-f CONNECTION_FILE ...``).
The server forks a child that takes them (as ``python -m ipykernel_launcher`` would have them: the environment
replaced, ``sys.path[0]`` the working folder) and runs the kernel. The launcher passes on the signals it gets
(an interrupt is SIGINT) and exits with the kernel; a kernel whose launcher is killed exits too (its connection
closes). conftest.ForkedKernelManager sends a kernel here only where the environment agrees with the server's in
the variables that libraries read on import (conftest.IMPORT_TIME); otherwise the kernel is a fresh process.
"""

import json
import os
import signal
import socket
import sys


def launch(path: str, argv: list[str]) -> int:
    """The launcher: a kernel of the server's, which lives as long as this process does."""
    conn = socket.socket(socket.AF_UNIX)
    conn.connect(path)
    request = {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}
    socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2])
    reader = conn.makefile()
    kernel = json.loads(reader.readline())["pid"]

    def pass_on(signum, _frame):
        try:
            os.kill(kernel, signum)
        except ProcessLookupError:  # it has just exited
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1):
        signal.signal(signum, pass_on)
    reader.read()  # until the kernel exits and its end of the connection closes
    return 0


def serve(path: str) -> None:
    import cli_forks  # noqa: F401  the libraries a run imports (tunekit, torch, transformers, trl, ...): paid once, here
    import ipykernel.kernelapp  # noqa: F401  the kernel itself
    import tunekit.widgets  # noqa: F401  the panels: ipywidgets, plotly

    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernels are reaped by the system
    print(json.dumps({"env": dict(os.environ)}), flush=True)  # ready, with the environment the imports left
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            kernel(conn)
        conn.close()


def kernel(conn: socket.socket) -> None:
    """The forked child: becomes the launcher's kernel; never returns."""
    import threading

    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the kernel waits for its own subprocesses
        message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        request = json.loads(message)
        for fd, target in zip(fds, (0, 1, 2)):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        paths = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
        sys.path[1:1] = paths
        os.chdir(request["cwd"])
        sys.path[0] = os.getcwd()  # as `python -m ipykernel_launcher` has it
        conn.sendall((json.dumps({"pid": os.getpid()}) + "\n").encode())
        threading.Thread(target=lambda: conn.recv(1) or os._exit(1), daemon=True).start()  # the launcher is gone

        from ipykernel import kernelapp

        sys.argv = ["ipykernel_launcher", *request["argv"]]
        kernelapp.launch_new_instance(argv=request["argv"])
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve(sys.argv[2])
    else:
        sys.exit(launch(sys.argv[2], sys.argv[3:]))
