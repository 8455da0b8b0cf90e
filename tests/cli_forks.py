"""Run `python -m tunekit train CONFIG` for many configs, each in a process of its own, with the imports paid once.

    python tests/cli_forks.py JOBS.json     # JOBS: [{"config": path, "cwd": folder, "out": path prefix}, ...]

This process imports what a `tunekit train` process imports on its way (tunekit, then torch, transformers, trl,
peft, datasets), then forks one child per job. A child starts from this process as it was after the imports (what
one job changes never reaches another), runs the CLI's ``main`` in its own working folder with its stdout and
stderr going to ``<out>.stdout`` / ``<out>.stderr``, and exits as ``python -m tunekit`` does: with main's code, or
a traceback and 1. The exit codes go to ``<JOBS>.codes`` (JSON, in the jobs' order). The environment is this
process's own (run one per environment: huggingface_hub reads HF_HUB_OFFLINE when it is imported). Used by
tests/test_bad_inputs.py, which also runs a few cases as real `python -m tunekit` processes and checks that they
answer the same.
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


def run(job: dict) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: one `tunekit train` process
        code = 1
        try:
            os.chdir(job["cwd"])
            for fd, suffix in ((1, ".stdout"), (2, ".stderr")):
                os.dup2(os.open(job["out"] + suffix, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
            sys.argv = ["tunekit", "train", job["config"]]
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
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    jobs = json.loads(open(sys.argv[1]).read())
    codes = [run(job) for job in jobs]
    with open(sys.argv[1] + ".codes", "w") as out:
        json.dump(codes, out)
