"""Shared helpers: every test trains the tiny random Llama, in a temporary folder."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test`: one process per core, so one thread each (torch, and the
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # processes the tests start), where two would wait on each other
SESSION_ENV = dict(os.environ)  # before any test's monkeypatch: what run_cli's forking process starts with


def load_tool(name: str):
    """A script of ``tools/`` (not a package) as a module, e.g. ``load_tool("workshop_check").with_parameters``."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny(tmp_path):
    """A config dict for the tiny model with a fresh output folder; update it per test."""
    return {
        "model_name_or_path": "tiny-random-llama",
        "stage": "sft",
        "dataset": "identity",
        "output_dir": str(tmp_path / "out"),
        "cutoff_len": 128,
        "per_device_train_batch_size": 4,
        "max_steps": 4,
        "logging_steps": 1,
        "save_steps": 1000,
        "learning_rate": 1e-3,
        "report_to": "none",
    }


def write_dataset(folder: Path, name: str, rows, info: dict, suffix: str = ".json") -> Path:
    """Write rows and register them in folder/dataset_info.json (merged with what is there)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif suffix == ".json":
        path.write_text(json.dumps(rows))
    info_path = folder / "dataset_info.json"
    registry = json.loads(info_path.read_text()) if info_path.exists() else {}
    registry[name] = {"file_name": path.name, **info}
    info_path.write_text(json.dumps(registry))
    return path


def run_cli(*args, cwd=None, timeout=600, input=None):
    """Run `tunekit ...` in a process of its own; returns the CompletedProcess.

    The process is forked from one that has already imported torch, transformers, trl, peft and datasets
    (tests/cli_forks.py --serve): a fresh `python -m tunekit` pays about 15 seconds of imports on 2 cores before
    it reads its arguments. Where this test's environment differs from the forking process's in a variable that a
    library reads on import (IMPORT_TIME), it is a fresh `python -m tunekit` process instead.
    tests/test_bad_inputs.py checks that a forked process answers as a fresh one."""
    args = [str(a) for a in args]
    env, server = dict(os.environ), _cli_server()
    if not server.agrees(env):
        return subprocess.run([sys.executable, "-m", "tunekit.cli", *args], capture_output=True, text=True,
                              cwd=cwd, timeout=timeout, input=input)
    return server.run(args, Path(cwd or os.getcwd()), {**server.imports_set, **env}, timeout, input)


# Variables that a library reads when it is imported (the hub's offline switch and folders, torch's threads, the
# interpreter's own): the rest are read when used, and the forked process is given them.
IMPORT_TIME = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "DATASETS_", "TORCH", "PYTORCH_", "OMP_", "MKL_", "KMP_",
               "CUDA_", "TOKENIZERS_", "UNSLOTH", "BNB_", "PYTHON")


class _ForkServer:
    """A process that imported the libraries once and forks what a test starts (tests/cli_forks.py,
    tests/kernel_forks.py); it answers first with its environment after the imports."""

    def __init__(self, command: list[str], **popen):
        env = {**SESSION_ENV, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), SESSION_ENV.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, **popen)
        self.env = self._answer("env", None)  # after its imports, which set a few variables, as a fresh one's do
        self.imports_set = {k: v for k, v in self.env.items() if env.get(k) != v}

    def agrees(self, env: dict) -> bool:
        """Whether a process started with ``env`` would have imported the libraries as this one did: the same
        value in every IMPORT_TIME variable, except those the imports set and ``env`` leaves out."""
        return all(env.get(k) == self.env.get(k) for k in set(env) | set(self.env)
                   if k.startswith(IMPORT_TIME) and k != "PYTHONPATH" and (k in env or k not in self.imports_set))

    def _answer(self, key: str, timeout: float | None):
        import select

        while True:
            if timeout is not None and not select.select([self.process.stdout], [], [], timeout)[0]:
                return None
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"{' '.join(self.process.args[1:])} stopped")
            answer = json.loads(line) if line.startswith("{") else {}  # a library may print on import: not one
            if key in answer:
                return answer[key]


class _CliServer(_ForkServer):
    """tests/cli_forks.py --serve, started on the first run_cli of this test process."""

    def __init__(self):
        super().__init__([sys.executable, str(ROOT / "tests" / "cli_forks.py"), "--serve"], stdin=subprocess.PIPE)

    def run(self, args: list[str], cwd: Path, env: dict, timeout: float,
            input: str | None) -> subprocess.CompletedProcess:
        import tempfile

        out = Path(tempfile.mkdtemp(prefix="tunekit-cli-")) / "run"
        job = {"argv": args, "cwd": str(cwd), "env": env, "out": str(out)}
        if input is not None:
            Path(f"{out}.stdin").write_text(input)
            job["stdin"] = True
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        pid = self._answer("pid", None)
        code = self._answer("code", timeout)
        if code is None:
            os.kill(pid, 9)
            self._answer("code", None)
            raise subprocess.TimeoutExpired(["tunekit", *args], timeout)
        done = subprocess.CompletedProcess(["tunekit", *args], code, Path(f"{out}.stdout").read_text(),
                                           Path(f"{out}.stderr").read_text())
        shutil.rmtree(out.parent, ignore_errors=True)
        return done


_SERVER: list[_CliServer] = []


def _cli_server() -> _CliServer:
    if not _SERVER or _SERVER[0].process.poll() is not None:
        _SERVER[:] = [_CliServer()]
    return _SERVER[0]


class _KernelServer(_ForkServer):
    """tests/kernel_forks.py --serve, started on the first notebook kernel of this test process."""

    def __init__(self):
        import tempfile

        self.socket = str(Path(tempfile.mkdtemp(prefix="tunekit-kernels-")) / "socket")
        super().__init__([sys.executable, str(ROOT / "tests" / "kernel_forks.py"), "--serve", self.socket])


_KERNELS: list[_KernelServer] = []


def _kernel_server() -> _KernelServer:
    if not _KERNELS or _KERNELS[0].process.poll() is not None:
        _KERNELS[:] = [_KernelServer()]
    return _KERNELS[0]


def forked_kernel_manager():
    """nbclient's kernel manager, whose kernels are forked from a process that has imported the libraries
    (tests/kernel_forks.py): ``NotebookClient(..., kernel_manager_class=forked_kernel_manager())``. A kernel whose
    environment differs from that process's in an IMPORT_TIME variable is a fresh process, as without it."""
    from jupyter_client.manager import AsyncKernelManager

    class ForkedKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments=None):
            command = super().format_kernel_cmd(extra_arguments)
            server = _kernel_server()
            if command[1:3] != ["-m", "ipykernel_launcher"] or not server.agrees(self._launch_args.get("env", os.environ)):
                return command
            return [sys.executable, str(ROOT / "tests" / "kernel_forks.py"), "--launch", server.socket, *command[3:]]

    return ForkedKernelManager


def pytest_sessionfinish(session):
    for server in _SERVER:
        server.process.stdin.close()
        server.process.wait(timeout=60)
    for server in _KERNELS:
        server.process.terminate()
        server.process.wait(timeout=60)
