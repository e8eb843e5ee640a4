"""`python -m tfxc.X ...` of a page's commands without starting the interpreter and TensorFlow each time.

tests/test_docs.py runs a page's blocks as they are written (bash, pipes and all) with a `python` first on
PATH that is this file's `shim`: a command `python -m tfxc.X args` is handed, with its working directory,
environment and standard streams (the descriptors themselves), to the page's server, which has imported
TensorFlow once and forks a child per command; the child runs the module as `__main__` exactly as
`python -m` would (`runpy.run_module`), with the command's `sys.argv`, `sys.path`, directory and
environment, and the exit status goes back to the shim. Every other command (`python -c`, `python
tools/x.py`, several workers through TF_CONFIG) runs the real interpreter.

The server imports TensorFlow and Keras only, before any TF op: no TF runtime threads exist yet when it
forks, so each child starts TF's runtime as a fresh process does.

  python tests/docs_runner.py serve SOCKET     # the server (test_docs starts it, one per page)
  python tests/docs_runner.py shim BIN_DIR     # writes BIN_DIR/python
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys

SHIM = """#!{python} -S
import json, os, socket, struct, sys
argv = sys.argv[1:]
server = os.environ.get("TFXC_DOCS_SERVER")
if server and len(argv) >= 2 and argv[0] == "-m" and argv[1].startswith("tfxc.") and "TF_CONFIG" not in os.environ:
    s = socket.socket(socket.AF_UNIX)
    s.connect(server)
    request = json.dumps({{"argv": argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}).encode()
    socket.send_fds(s, [struct.pack(">Q", len(request))], [0, 1, 2])
    s.sendall(request)
    reply = b""
    while len(reply) < 4:
        chunk = s.recv(4 - len(reply))
        if not chunk:
            sys.exit(137)  # the child died without a status (killed)
        reply += chunk
    sys.exit(struct.unpack(">i", reply)[0])
os.execv({python!r}, [{python!r}] + argv)
"""


def write_shim(bin_dir: str) -> str:
    path = os.path.join(bin_dir, "python")
    with open(path, "w", encoding="utf-8") as f:
        f.write(SHIM.format(python=sys.executable))
    os.chmod(path, 0o755)
    return path


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    header, fds, _, _ = socket.recv_fds(conn, 8, 3)
    (size,) = struct.unpack(">Q", header)
    body = b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise EOFError
        body += chunk
    return json.loads(body), fds


def _run(conn: socket.socket, base_path: list[str]) -> None:
    """In the forked child: becomes `python -m MODULE ARGS` in the command's directory and environment."""
    import runpy

    request, fds = _receive(conn)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    module, *args = request["argv"]
    # As `python -m`: the working directory first, then PYTHONPATH, then the interpreter's own entries.
    extra = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.getcwd(), *extra, *[p for p in base_path if p not in extra]]
    sys.argv = [module, *args]
    status = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code is None:
            status = 0
        elif isinstance(e.code, int):
            status = e.code
        else:
            sys.stderr.write(f"{e.code}\n")
            status = 1
    except BaseException:  # noqa: BLE001 - what the interpreter prints for an uncaught exception
        import traceback

        traceback.print_exc()
        status = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    conn.sendall(struct.pack(">i", status))
    os._exit(status)


def serve(path: str) -> None:
    import signal

    # TensorFlow and Keras imported once, before any op: a forked child starts TF's runtime itself.
    import tfxc._tf  # noqa: F401

    base_path = [p for p in sys.path[1:] if p]  # without this file's directory
    base_path = [p for p in base_path if os.path.abspath(p) not in
                 {os.path.abspath(q) for q in os.environ.get("PYTHONPATH", "").split(os.pathsep) if q}]
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel; statuses go by socket
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(8)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                _run(conn, base_path)
            finally:
                os._exit(1)
        conn.close()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif sys.argv[1] == "shim":
        print(write_shim(sys.argv[2]))
