"""A preloaded Python for the tests that run the project's commands as processes: `python ...`, `profvlm ...` and
`accelerate ...` still run as separate processes, with their own argv, cwd, stdio, exit status and signals, but each
is forked from a server that imported torch, transformers, TRL, datasets and friends once, instead of paying their
~5 s import in every process (most of the time of those tests on a slow CPU).

    python = preloaded_python(env)                      # one server per environment, started once per session
    subprocess.run([python, "training/sft.py", ...], env=env)       # instead of [sys.executable, ...]
    PATH=<preloaded_bin(env)>:$PATH bash -c "profvlm init ..."      # README blocks: python/profvlm/accelerate

What differs from a fresh interpreter, on purpose and no more: the third-party modules above are already imported
(never the project's own packages, so `import profvlm` still registers from scratch), and `sys.executable` is the
launcher, so the processes a command starts (accelerate launch, torch.distributed.run) are forked the same way.
The environment is the server's: a command whose import-time variables (HF_*, OMP_*, ...) differ is refused, never
run in the wrong one. Killing a launcher kills its command first. `python -m tests.preloaded_python SOCKET` is the
server."""
import atexit
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# Variables read when a library is imported or loaded: a command may only run where the server has the same ones.
# (Not KMP_*: Intel's OpenMP reads them, and torch here loads GNU's; sklearn's import sets KMP_DUPLICATE_LIB_OK.)
# (Not PROFVLM_* or GRADIO_*: neither the project nor gradio is preloaded; they read theirs in each command.)
IMPORT_TIME_PREFIXES = ("HF_", "HUGGINGFACE", "TRANSFORMERS", "TOKENIZERS", "DATASETS", "ATEN_", "ONEDNN_", "DNNL_",
                        "MKL_", "OMP_", "PYTHON", "XDG_", "MPLBACKEND", "HOME")
# Applied per command: OMP_NUM_THREADS (torchrun and accelerate set it per process) with set_num_threads,
# PYTHONPATH by rebuilding sys.path as the interpreter does at startup.
APPLIED_AT_START = ("OMP_NUM_THREADS", "PYTHONPATH")
UNSUPPORTED = 97  # the launcher's exit status when it refuses a command (printed with the reason)

# The launcher: stdlib only and `-S`, so that it starts in milliseconds. It hands argv, cwd, env and its stdin,
# stdout and stderr to the server, waits for the command's status and ends the same way (exit code or signal).
_LAUNCHER = '''#!{python} -S
import json, os, signal, socket, sys
TARGET = {target!r}
argv = ([TARGET] if TARGET else []) + sys.argv[1:]
request = json.dumps({{"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}}).encode()
conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
conn.connect({socket_path!r})
socket.send_fds(conn, [len(request).to_bytes(8, "big")], [0, 1, 2])
conn.sendall(request)
reply = b""
while not reply.endswith(b"\\n"):
    chunk = conn.recv(64)
    if not chunk:
        sys.exit("preloaded python: the server closed the connection")
    reply += chunk
kind, value = reply.decode().split()
if kind == "signal":
    try:
        signal.signal(int(value), signal.SIG_DFL)
    except (OSError, ValueError):  # SIGKILL, SIGSTOP
        pass
    os.kill(os.getpid(), int(value))
sys.exit(int(value))
'''


# ------------------------------------------------------------------------------------------------------- client
class PreloadedServer:
    """One server process (started with `env`) and its folder of launchers: python, profvlm, accelerate."""

    def __init__(self, env: dict):
        self.env = dict(env)
        self.folder = Path(tempfile.mkdtemp(prefix="preloaded_python_"))
        self.socket_path = str(self.folder / "server.sock")
        self.bin = self.folder / "bin"
        self.bin.mkdir()
        for name, target in (("python", None), ("profvlm", VENV_BIN / "profvlm"),
                             ("accelerate", VENV_BIN / "accelerate")):
            launcher = self.bin / name
            launcher.write_text(_LAUNCHER.format(python=sys.executable, target=target and str(target),
                                                 socket_path=self.socket_path))
            launcher.chmod(0o755)
        self.process = subprocess.Popen([sys.executable, "-m", "tests.preloaded_python", self.socket_path],
                                        cwd=REPO_ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        text=True)
        self.ready = False  # until the server says so (`wait_until_ready`): it imports meanwhile

    def wait_until_ready(self) -> None:
        """Block until the server listens (its one line on stdout), or raise if it died."""
        if not self.ready:
            if self.process.stdout.readline().strip() != "ready":
                self.process.kill()
                raise RuntimeError(f"the preloaded python server did not start (exit {self.process.wait()})")
            self.ready = True

    @property
    def python(self) -> str:
        self.wait_until_ready()
        return str(self.bin / "python")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


_SERVERS: dict[str, PreloadedServer] = {}


def _key(env: dict) -> str:
    """What a server is shared on: the import-time variables (the rest is set per command)."""
    relevant = sorted((k, v) for k, v in env.items() if k.startswith(IMPORT_TIME_PREFIXES) and k != "PYTHONPATH")
    return hashlib.sha256(json.dumps(relevant).encode()).hexdigest()


def server_for(env: dict) -> PreloadedServer:
    """A server for this environment's import-time variables, started on first use, stopped when the session ends."""
    key = _key(env)
    if key not in _SERVERS:
        if not _SERVERS:
            atexit.register(lambda: [s.close() for s in _SERVERS.values()])
        _SERVERS[key] = PreloadedServer(env)
    return _SERVERS[key]


def start_in_background(env: dict) -> None:
    """Start the server for `env` now without waiting for it: it imports while the tests before its first user run."""
    server_for(env)


def preloaded_python(env: dict) -> str:
    """The path of a `python` that runs in `env` and forks from a preloaded server (use it as argv[0])."""
    return server_for(env).python


def preloaded_bin(env: dict) -> str:
    """A folder with `python`, `profvlm` and `accelerate` launchers for `env`, to put first on PATH."""
    server = server_for(env)
    server.wait_until_ready()
    return str(server.bin)


# ------------------------------------------------------------------------------------------------------- server
PRELOAD = ("torch", "numpy", "av", "safetensors", "huggingface_hub", "datasets", "transformers",
           "transformers.modeling_utils", "transformers.processing_utils", "transformers.pipelines",
           "transformers.trainer", "transformers.models.llama.modeling_llama",
           "transformers.models.timesformer.modeling_timesformer", "transformers.models.videomae.modeling_videomae",
           "peft", "trl", "trl.trainer.sft_trainer", "accelerate", "accelerate.commands.accelerate_cli",
           "accelerate.commands.launch", "torch.distributed.run", "matplotlib", "scipy.stats")


STARTUP_ENV = dict(os.environ)  # the server's environment before its imports (some of them set variables)


def _pythonpath_entries(value: str | None) -> list[str]:
    """PYTHONPATH as the interpreter reads it: absolute paths (an empty entry is the current folder)."""
    return [os.path.abspath(entry) for entry in value.split(os.pathsep)] if value else []


# sys.path after the script's folder, without the server's PYTHONPATH: what every command's own PYTHONPATH goes before
BASE_SYS_PATH = [p for p in sys.path[1:] if p not in _pythonpath_entries(STARTUP_ENV.get("PYTHONPATH"))]


def _import_time_difference(env: dict) -> list[str]:
    """The import-time variables in which `env` differs from the server's environment at startup."""
    names = {k for k in (*env, *STARTUP_ENV) if k.startswith(IMPORT_TIME_PREFIXES)}
    return sorted(k for k in names if env.get(k) != STARTUP_ENV.get(k) and k != "PYTHONPATH"
                  and not (k == "OMP_NUM_THREADS" and k in env and k in STARTUP_ENV))


def _python_main(argv: list[str]) -> None:
    """What `python ARGV` does after startup: -u, -W, -X are taken; then -m MODULE, -c CODE or a script path."""
    import runpy

    args = list(argv)
    while args and args[0] in ("-u", "-B", "-W", "-X") or args and args[0][:2] in ("-W", "-X"):
        flag = args.pop(0)
        if flag in ("-W", "-X"):  # its value is the next argument
            args.pop(0)
    if not args:
        raise SystemExit("preloaded python: an interactive interpreter is not supported")
    if args[0] == "-m":
        sys.argv = [args[1], *args[2:]]
        sys.path[0] = os.getcwd()
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    elif args[0] == "-c":
        import types

        sys.argv = ["-c", *args[2:]]
        sys.path[0] = ""
        main = types.ModuleType("__main__")
        sys.modules["__main__"] = main
        exec(compile(args[1], "<string>", "exec"), main.__dict__)
    elif args[0].startswith("-"):
        print(f"preloaded python: option {args[0]} is not supported", file=sys.stderr)
        os._exit(UNSUPPORTED)
    else:
        sys.argv = args
        sys.path[0] = os.path.dirname(os.path.abspath(args[0]))
        runpy.run_path(args[0], run_name="__main__")


def _run_command(request: dict, fds: list[int], launcher: str) -> None:
    """In the forked child: become the requested process, run it, end like the interpreter would."""
    import random
    import threading
    import traceback

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.chdir(request["cwd"])
    set_by_imports = {k: v for k, v in os.environ.items() if STARTUP_ENV.get(k) != v}
    os.environ.clear()
    os.environ.update(set_by_imports)  # what the preloaded imports set, as they would in a fresh process
    os.environ.update(request["env"])
    search = []
    for entry in _pythonpath_entries(os.environ.get("PYTHONPATH")) + BASE_SYS_PATH:
        if entry not in search:
            search.append(entry)
    sys.path[:] = ["", *search]  # [0] is set by _python_main
    if "OMP_NUM_THREADS" in os.environ:
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    random.seed()
    sys.executable = launcher
    code = 0
    try:
        _python_main(request["argv"])
    except SystemExit as exit_:
        if exit_.code is None:
            code = 0
        elif isinstance(exit_.code, int):
            code = exit_.code
        else:
            print(exit_.code, file=sys.stderr)
            code = 1
    except BaseException:  # what the interpreter does with an uncaught exception (without this file's frames)
        kind, value, tb = sys.exc_info()
        while tb is not None and tb.tb_frame.f_code.co_filename == _run_command.__code__.co_filename:
            tb = tb.tb_next
        sys.excepthook(kind, value.with_traceback(tb), tb)
        code = 1
    try:
        threading._shutdown()  # as at interpreter exit: wait for non-daemon threads, then atexit
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        traceback.print_exc()
    os._exit(code)


def _serve_one(conn: socket.socket, launcher: str) -> None:
    """In a forked handler: read one request, fork its command, report how it ended; kill it if the launcher dies."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    header, fds, _, _ = socket.recv_fds(conn, 8, 3)
    while len(header) < 8:
        header += conn.recv(8 - len(header))
    size = int.from_bytes(header, "big")
    data = b""
    while len(data) < size:
        data += conn.recv(size - len(data))
    request = json.loads(data)
    difference = _import_time_difference(request["env"])
    if difference:
        os.write(fds[2], f"preloaded python: refused, the server was started with other {', '.join(difference)}; "
                         f"start one for this environment\n".encode())
        conn.sendall(f"exit {UNSUPPORTED}\n".encode())
        os._exit(0)
    sys.stdout.flush()
    child = os.fork()
    if child == 0:
        conn.close()
        _run_command(request, fds, launcher)
    for fd in fds:
        os.close(fd)
    child_done = os.pidfd_open(child)
    readable, _, _ = select.select([conn, child_done], [], [])
    if child_done not in readable:  # the launcher went away (killed): its command goes too
        os.kill(child, signal.SIGKILL)
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        reply = f"signal {os.WTERMSIG(status)}\n"
    else:
        reply = f"exit {os.WEXITSTATUS(status)}\n"
    try:
        conn.sendall(reply.encode())
    except OSError:
        pass
    os._exit(0)


def serve(socket_path: str) -> None:
    """Import PRELOAD, listen on `socket_path`, fork one handler per connection."""
    import importlib
    import threading

    for name in PRELOAD:
        importlib.import_module(name)
    assert threading.active_count() == 1, f"a preloaded import started threads: {threading.enumerate()}"
    launcher = str(Path(socket_path).parent / "bin" / "python")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            listener.close()
            _serve_one(conn, launcher)
        conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
