"""The documentation's commands run: every ```bash and ```python block of README.md, BENCHMARKS.md and docs/*.md.

The convention (also stated in docs/README.md):

* A fenced block whose language is `bash` or `python` is a command, run by this test in order with the
  other blocks of its page: bash blocks under `bash -euo pipefail`, python blocks with this interpreter.
* A block that cannot run here (it installs, needs a GPU, a download or several machines, or trains for
  minutes) carries the line `<!-- not run: REASON -->` directly above its fence. The reason is required.
* Blocks of other languages (`json`, `text`, ...) are examples of files or output, not commands.

Each page runs in a fresh directory laid out like a checkout: `configs/`, `tools/`, `tests/` and
`train.sh` of this repository beside the page's own `runs/`, and the shared data sets at
`../shared/data`, where the commands find them from the repository root. Pages are independent (one
test each, so xdist may spread them), and the commands keep to small sets and a few training steps:
together they must stay within two minutes of the suite's time (`SLOW_PAGES`, which train
several models each, run with --run-slow). A page's `python -m tfxc.X` commands are run by a server that
imported TensorFlow once for the page and forks a child per command (tests/docs_runner.py): each is still
`python -m` of that module, with the command line, directory, environment and streams bash gives it.

docs/benchmarks-history.md is the dated lab notebook, kept verbatim: a record of what was run, not
instructions, so its blocks are not run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import docs_runner
import pytest
from helpers import REPO, cli_env

RUNNABLE = ("bash", "python")
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
NOT_COMMANDS = {"docs/benchmarks-history.md"}
CHECKOUT = ("configs", "tools", "tests", "train.sh")  # what the pages' commands read from the repository
PAGE_TIMEOUT_S = 300
# Pages whose commands train several models (a minute or more of the suite each): run with --run-slow.
SLOW_PAGES = {"docs/text.md", "docs/serving.md", "docs/evaluation.md", "docs/training.md", "docs/python-api.md",
              "docs/faces.md"}


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: its language, code, first line number (1-based) and not-run reason."""

    language: str
    code: str
    line: int
    not_run: str | None


def pages() -> list[str]:
    """The pages whose commands are run, relative to the repository."""
    docs = sorted(f"docs/{name}" for name in os.listdir(os.path.join(REPO, "docs")) if name.endswith(".md"))
    return ["README.md", "BENCHMARKS.md"] + [page for page in docs if page not in NOT_COMMANDS]


def blocks(text: str) -> list[Block]:
    """The fenced blocks of a markdown text, each with the not-run reason written directly above it."""
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        above = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = NOT_RUN.fullmatch(above.strip())
        found.append(Block(match.group(1), match.group(2), line, marker.group(1) if marker else None))
    return found


def read(page: str) -> str:
    with open(os.path.join(REPO, page), encoding="utf-8") as f:
        return f.read()


# === The convention itself ===
def test_the_convention_reads_languages_reasons_and_line_numbers():
    text = ("intro\n```bash\necho one\n```\n<!-- not run: needs a GPU -->\n```python\nimport x\n```\n"
            "```json\n{}\n```\n<!--not run:-->\n```bash\nfalse\n```\n")
    found = blocks(text)
    assert [(b.language, b.line, b.not_run) for b in found] == [("bash", 2, None), ("python", 6, "needs a GPU"),
                                                                ("json", 9, None), ("bash", 13, "")]
    assert found[0].code == "echo one\n"


@pytest.mark.parametrize("page", pages() + sorted(NOT_COMMANDS))
def test_every_not_run_block_says_why_and_every_link_resolves(page):
    text = read(page)
    # An indented fence (inside a list item) would be read as prose and never run: commands stay at column 0.
    indented = re.findall(r"^[ \t]+```(?:bash|python)\b", text, re.M)
    assert page in NOT_COMMANDS or not indented, f"{page}: a command block is indented; move it out of the list"
    for block in blocks(text):
        assert block.not_run is None or block.not_run, f"{page}:{block.line}: a not-run block needs its reason"
        if block.not_run is not None:
            assert block.language in RUNNABLE, f"{page}:{block.line}: only commands are marked not run"
    # Relative links (guides, images, files) point at something in the repository.
    prose = FENCE.sub("", text)
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", prose):
        if "://" in target or target.startswith("mailto:"):
            continue
        path = os.path.normpath(os.path.join(REPO, os.path.dirname(page), target))
        assert os.path.exists(path), f"{page}: the link {target} points at nothing"


def test_the_readme_is_a_front_door():
    readme = read("README.md")
    assert len(readme.splitlines()) <= 250
    # Its two commands stay true: the install line is .ci/run's, and the test command is what CI runs.
    ci = read(".ci/run")
    install = re.search(r"^python3 -m venv .*$", ci, re.M).group(0)
    assert install in readme and "python -m pytest" in ci
    # Every guide is reachable from the front door.
    for page in pages()[2:]:
        assert f"({page})" in readme, f"README.md does not link {page}"


# === Running the pages ===
def checkout(tmp_path, shared_data: str) -> str:
    """A directory shaped like the repository root for the commands: returns the working directory."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in CHECKOUT:
        os.symlink(os.path.join(REPO, name), root / name)
    (tmp_path / "shared").mkdir()
    os.symlink(shared_data, tmp_path / "shared" / "data")
    return str(root)


def run_block(block: Block, page: str, cwd: str, env: dict, timeout: float) -> None:
    command = (["bash", "-euo", "pipefail", "-c", block.code] if block.language == "bash"
               else [sys.executable, "-c", block.code])
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{page}:{block.line}: over the page's time limit\n{out[-3000:]}")
    assert proc.returncode == 0, f"{page}:{block.line}: exit {proc.returncode}\n{block.code}\n{out[-4000:]}"


@pytest.mark.timeout(PAGE_TIMEOUT_S + 60)
@pytest.mark.parametrize("page", [pytest.param(page, marks=pytest.mark.slow(reason="time: it trains several models"))
                                  if page in SLOW_PAGES else page
                                  for page in pages()])
def test_the_page_commands_run(page, tmp_path, shared_data):
    runnable = [b for b in blocks(read(page)) if b.language in RUNNABLE and b.not_run is None]
    if not runnable:
        pytest.skip(f"{page} has no command to run")
    cwd = checkout(tmp_path, shared_data)
    # `python` in the commands is this interpreter (its `-m tfxc.X` through the page's server), and `import
    # tfxc` this checkout.
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    if sum(block.code.count("python -m tfxc.") for block in runnable) < 2:  # a server would save nothing
        env = cli_env({"PATH": path, "TFXC_NO_TMUX": "1"})
        for block in runnable:
            run_block(block, page, cwd, env, PAGE_TIMEOUT_S)
        return
    with tempfile.TemporaryDirectory(prefix="tfxc-docs-") as short:  # a socket's path has a length limit
        server = start_server(os.path.join(short, "socket"))
        try:
            bin_dir = os.path.join(short, "bin")
            os.mkdir(bin_dir)
            docs_runner.write_shim(bin_dir)
            env = cli_env({"PATH": bin_dir + os.pathsep + path, "TFXC_NO_TMUX": "1",
                           "TFXC_DOCS_SERVER": os.path.join(short, "socket")})
            for block in runnable:
                run_block(block, page, cwd, env, PAGE_TIMEOUT_S)
        finally:
            os.killpg(server.pid, signal.SIGKILL)  # the server and any child a timed-out command left
            server.communicate()


def start_server(path: str) -> subprocess.Popen:
    """The page's `python -m tfxc.X` server (tests/docs_runner.py), once it listens on the socket `path`."""
    server = subprocess.Popen([sys.executable, docs_runner.__file__, "serve", path], cwd=REPO, env=cli_env(),
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    if server.stdout.readline().strip() != "ready":
        os.killpg(server.pid, signal.SIGKILL)
        server.communicate()
        pytest.fail("the docs' command server did not start")
    return server
