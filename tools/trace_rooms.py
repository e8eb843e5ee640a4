"""Which of tfxc's modules a command passes through, in the order it enters them: the rooms of its walk.

  python tools/trace_rooms.py [--json] [--until MODULE] -- tfxc.train --config configs/quickstart.json \
      --set data.val_fold='*/2' ...

Runs the module's `main(argv)` in this process with a profiler hook that notes every call whose function lives
in a tfxc module, and prints:

  rooms      the tfxc modules the command entered (the package's `__init__`s and `tfxc._tf` left out)
  moves      the distinct (caller, callee) pairs of calls from one tfxc module into another
  climbs     those moves back into a room the walk entered before the caller's (a trip that comes back)

and the rooms in their first-entry order. `--until tfxc.training.trainer` counts only the walk up to the
first entry into that module (the way from the command line to the training loop); the command runs on. The same command traced on two checkouts (PYTHONPATH=CHECKOUT)
shows what a change did to the path from the command line to its result. The hook sees Python calls only:
what TensorFlow runs in its graphs counts as one call into the module that runs it, and importing a module
(running its body) is no call.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys

from tfxc.utils.display import json_text

SKIPPED = ("tfxc._tf",)


def trace(module: str, argv: list[str], until: str | None = None) -> dict:
    """Runs `module`'s main(argv) under the hook (module docstring) and returns what it saw (up to the first
    entry into `until`)."""
    order, first, edges, stopped = [], {}, set(), []

    def room_of(frame) -> str | None:
        name = frame.f_globals.get("__name__", "")
        if (not name.startswith("tfxc") or name in SKIPPED or frame.f_code.co_filename.endswith("__init__.py")
                or frame.f_code.co_name == "<module>"):  # a module's import runs its body: no call of the walk
            return None
        return name

    def hook(frame, event, arg):
        if event != "call" or stopped:
            return
        room = room_of(frame)
        if room is None:
            return
        if room == until:
            stopped.append(room)
            return
        caller = frame.f_back
        while caller is not None and room_of(caller) is None:
            caller = caller.f_back
        previous = room_of(caller) if caller is not None else None
        if room not in first:
            first[room] = len(order)
            order.append(room)
        if previous is not None and previous != room:
            edges.add((previous, room))

    main = importlib.import_module(module).main
    sys.setprofile(hook)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the command's own printout stays apart from the trace
            status = main(argv)
    except SystemExit as e:
        status = e.code
    finally:
        sys.setprofile(None)
    climbs = sorted((a, b) for a, b in edges if first[b] < first[a])
    return {"command": [module, *argv], "status": status, "rooms": len(order), "moves": len(edges),
            "climbs": len(climbs), "order": order, "climbed": [f"{a} -> {b}" for a, b in climbs]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--until", metavar="MODULE", help="count the walk up to the first call into MODULE only")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="-- MODULE ARGS...: a tfxc command-line module (tfxc.train, ...) and its arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or not command[0].startswith("tfxc."):
        parser.error("give the command after --, starting with a tfxc module, e.g. -- tfxc.train --config C")
    result = trace(command[0], command[1:], args.until)
    if args.json:
        print(json_text(result))
    else:
        print(f"{result['rooms']} rooms, {result['moves']} moves between them, {result['climbs']} climbs back "
              f"to a room entered earlier (exit status {result['status']})")
        print("\n".join(f"  {room}" for room in result["order"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
