"""The workflow view: a job with its durable steps and its sub-jobs (and theirs), as a tree with times.

Each node is a job summary, its steps (durable calls, named checkpoints, fan-outs, and whatever durable
step kinds the library records) in call order, and its children. What a waiting job waits on comes from
its newest `job_waiting` event, so new kinds of waiting (a sleep, a signal) show without changes here.
The tree is bounded (depth, children per node, nodes in all) so a fan-out of 100,000 stays cheap.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import djobs
from djobs.ui.views import preview, summary

if TYPE_CHECKING:
    from djobs.queue import Queue

MAX_DEPTH = 4
MAX_CHILDREN = 100
MAX_NODES = 400
ROOT_EVENTS = 100

#: Step kinds by checkpoint name; a call is anything else with a call index, a checkpoint one without.
_KINDS = (
    (re.compile(r"^fan_?out$"), "fanout"),
    (re.compile(r"^(sleep|sleep_until|timer)(:|$)"), "sleep"),
    (re.compile(r"^(signal|wait_for_signal|check_signal)(:|$)"), "signal"),
)


def step_kind(name: str, call_index: int | None) -> str:
    for pattern, kind in _KINDS:
        if pattern.match(name):
            return kind
    return "call" if call_index is not None else "checkpoint"


def _path(key: Any, index: Any) -> tuple[int, ...]:
    """Sort key of a step: its call path ("c:1.0" → (1, 0)); named checkpoints after, by time."""
    text = str(key or "")
    digits = re.findall(r"\d+", text.split(":", 1)[-1]) if text.startswith("c") else []
    if digits:
        return tuple(int(d) for d in digits)
    return (index,) if isinstance(index, int) else (1 << 62,)


def _step(cp: Any) -> dict[str, Any]:
    return {
        "kind": step_kind(cp.name, cp.call_index),
        "index": cp.call_index,
        "key": getattr(cp, "key", None),
        "name": cp.name,
        "status": "failed" if cp.error else "done",
        "at": cp.created_at,
        "value_preview": preview(cp.value),
        "error": cp.error,
    }


def tree(queue: Queue, job_id: str, depth: int = MAX_DEPTH) -> dict[str, Any]:
    """The workflow rooted at `job_id`: JobNotFound when there is no such job."""
    budget = [MAX_NODES]

    def node(job: Any, level: int, events: int) -> dict[str, Any]:
        budget[0] -= 1
        detail = queue.job_detail(job.id, events=events, sub_jobs=MAX_CHILDREN)
        steps = sorted(
            (_step(cp) for cp in detail.checkpoints),
            key=lambda s: (_path(s["key"], s["index"]), str(s["at"] or "")),
        )
        out: dict[str, Any] = {"job": summary(detail.job), "steps": steps, "waiting_on": None, "children": []}
        if detail.job.status == djobs.JobStatus.WAITING:
            recent = queue.job_events(job.id, newest=20) if not detail.events else detail.events
            waits = [e for e in recent if e.kind == "job_waiting"]
            out["waiting_on"] = waits[-1].data if waits else None
        if events:
            out["events"] = detail.events
        for sub in detail.sub_jobs:
            if level + 1 < depth and budget[0] > 0:
                out["children"].append(node(sub, level + 1, 0))
            else:  # past the depth or the budget: the sub-job alone, marked as not expanded
                out["children"].append({"job": summary(sub), "steps": None, "children": None})
        out["more_children"] = detail.more_sub_jobs
        return out

    root = queue.get_job(job_id)
    if root is None:
        raise djobs.JobNotFound(job_id)
    ancestors: list[dict[str, Any]] = []
    parent = root.parent_id
    while parent is not None and len(ancestors) < 20:
        above = queue.get_job(parent)
        if above is None:
            break
        ancestors.append({"id": above.id, "type": above.type, "status": above.status})
        parent = above.parent_id
    return {"root": node(root, 0, ROOT_EVENTS), "ancestors": list(reversed(ancestors)), "truncated": budget[0] <= 0}
