#!/usr/bin/env python3
"""The shapes of `nofx bench` run in LangGraph, for the comparison in the README.

Each node does what `test:echo` does (nothing but return), so what is timed is the
framework's own cost per node. With `--checkpointer sqlite` every step is saved with
LangGraph's SqliteSaver to a file in a temporary directory (its durable mode); with `none`
nothing is saved. Only `invoke` is timed (building and compiling the graph is not).

    python3 -m venv .venv && .venv/bin/pip install langgraph langgraph-checkpoint-sqlite
    .venv/bin/python bench/langgraph_compare.py --shape fanout --tasks 10000 --checkpointer sqlite

Prints one JSON line: {"framework", "version", "shape", "tasks", "checkpointer", "seconds",
"tasks_per_s"}.
"""

import argparse
import json
import sqlite3
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    n: int


def echo(_state: State) -> dict:
    return {}


def graph(shape: str, n: int) -> StateGraph:
    g = StateGraph(State)
    if shape == "chain":
        for i in range(n):
            g.add_node(f"t{i}", echo)
        g.add_edge(START, "t0")
        for i in range(1, n):
            g.add_edge(f"t{i - 1}", f"t{i}")
        g.add_edge(f"t{n - 1}", END)
    elif shape == "fanout":
        fan = [f"f{i}" for i in range(n - 2)]
        for name in ["root", *fan, "sink"]:
            g.add_node(name, echo)
        g.add_edge(START, "root")
        for name in fan:
            g.add_edge("root", name)
        g.add_edge(fan, "sink")
        g.add_edge("sink", END)
    else:
        raise SystemExit(f"unknown shape {shape}")
    return g


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=["chain", "fanout"], default="fanout")
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--checkpointer", choices=["sqlite", "none"], default="sqlite")
    a = ap.parse_args()
    if a.tasks < 3:
        raise SystemExit("--tasks must be at least 3")
    with tempfile.TemporaryDirectory() as tmp:
        saver = None
        if a.checkpointer == "sqlite":
            from langgraph.checkpoint.sqlite import SqliteSaver

            conn = sqlite3.connect(Path(tmp) / "lg.db", check_same_thread=False)
            saver = SqliteSaver(conn)
        app = graph(a.shape, a.tasks).compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "bench"}, "recursion_limit": a.tasks + 10}
        started = time.perf_counter()
        app.invoke({"n": 0}, config)
        seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "framework": "langgraph",
                "version": version("langgraph"),
                "shape": a.shape,
                "tasks": a.tasks,
                "checkpointer": a.checkpointer,
                "seconds": seconds,
                "tasks_per_s": a.tasks / seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
