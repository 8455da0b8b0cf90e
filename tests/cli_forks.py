"""Run `python -m tunekit ...` many times, each run a process of its own, with the imports paid once.

    python tests/cli_forks.py JOBS.json     # JOBS: [{"config": path, "cwd": folder, "out": path prefix}, ...]
    python tests/cli_forks.py --serve       # jobs as JSON lines on stdin, answers as JSON lines on stdout

This process imports what a `tunekit` process imports on its way (tunekit, then torch, transformers, trl, peft,
datasets), then forks one child per job. A child starts from this process as it was after the imports (what one
job changes never reaches another), runs the CLI's ``main`` with the job's arguments (``argv``, or ``train CONFIG``)
in its own working folder, its stdout and stderr going to ``<out>.stdout`` / ``<out>.stderr``, and exits as
``python -m tunekit`` does: with main's code, or a traceback and 1.

- With a JOBS file, the exit codes go to ``<JOBS>.codes`` (JSON, in the jobs' order); the environment is this
  process's own (run one per environment). Used by tests/test_bad_inputs.py, which also runs a few cases as real
  `python -m tunekit` processes and checks that they answer the same.
- With ``--serve``, a job may carry its input (``stdin``: true, read from ``<out>.stdin``) and its ``env`` (the
  child's whole environment; the caller sends only jobs whose environment agrees with this process's in the
  variables libraries read on import, see conftest.run_cli); it first
  answers with its environment after the imports (``{"env": ...}``), then to each job with ``{"pid": ...}`` as it
  starts and ``{"code": ...}`` when it ends. Used by conftest.run_cli.
"""

import json
import os
import sys
import traceback

from tunekit.cli import main  # noqa: E402  first, as `python -m tunekit` imports it

import datasets  # noqa: E402,F401  the libraries a run imports while it runs: paid once, here
import peft  # noqa: E402,F401
import torch  # noqa: E402,F401
import transformers  # noqa: E402,F401
import trl  # noqa: E402,F401

try:  # tunekit.harness imports it on its first call; on import it sets HF_XET_HIGH_PERFORMANCE, which then stays in
    import lm_eval  # noqa: E402,F401  the test process's environment: here too, so that run_cli's comparison agrees
except ImportError:  # the harness extra is not installed
    pass


def start(job: dict) -> int:
    """Fork the child that runs ``job``; returns its pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1  # the child: one `tunekit` process
    try:
        if "env" in job:
            os.environ.clear()
            os.environ.update(job["env"])
            paths = [p for p in job["env"].get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
            sys.path[1:1] = paths  # where `python -m` puts them: after the working folder
        os.chdir(job["cwd"])
        sys.path[0] = os.getcwd()  # as `python -m` has it (a reward function's module beside the config is found)
        os.dup2(os.open(job["out"] + ".stdin" if "stdin" in job else os.devnull, os.O_RDONLY), 0)
        sys.stdin = open(0, closefd=False)  # not the server's reader, which may hold what it read ahead
        for fd, suffix in ((1, ".stdout"), (2, ".stderr")):
            os.dup2(os.open(job["out"] + suffix, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        sys.argv = ["tunekit", *job.get("argv", ["train", job.get("config")])]
        code = main(sys.argv[1:])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # what the interpreter prints for an uncaught exception
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def finish(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def serve() -> None:
    answers = os.fdopen(os.dup(1), "w")  # the children's stdout is their own file; the answers go here
    answers.write(json.dumps({"env": dict(os.environ)}) + "\n")  # as the imports left it (torch sets a few)
    answers.flush()
    for line in sys.stdin:
        pid = start(json.loads(line))
        answers.write(json.dumps({"pid": pid}) + "\n")
        answers.flush()
        answers.write(json.dumps({"code": finish(pid)}) + "\n")
        answers.flush()


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve()
    else:
        jobs = json.loads(open(sys.argv[1]).read())
        codes = [finish(start(job)) for job in jobs]
        with open(sys.argv[1] + ".codes", "w") as out:
            json.dump(codes, out)
