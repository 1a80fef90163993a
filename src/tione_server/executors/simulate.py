"""The simulate executor: runs move through the states on a timeline, and nothing is executed.

For people testing client code against a TI-ONE-like endpoint. A run is SUBMITTING for `submit_seconds`
after its Create/Start request, its pods are PENDING (task STARTING) for `start_seconds` once capacity is
granted, then RUNNING for `run_seconds`, then exit 0. Per task, the Envs `TI_SIMULATE_RUN_SECONDS` and
`TI_SIMULATE_EXIT_CODE` change the running time and the exit code of the pod that decides the run
(spec §6.5). A Stop ends the pods `stop_seconds` after the SIGTERM. Synthetic log lines are written
with their timeline timestamps, so DescribeLogs shows them as time passes. Everything is computed from
times kept in the database (the pod's `launched_at`, the run's `term_sent_at`), so the timeline survives a
restart and pods need no handle.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from pathlib import Path

from tione_server.executors.base import STREAMS, Observation, PodSpec, RunSpec, Submission
from tione_server.executors.plan import IDLE
from tione_server.executors.runfiles import FileBackedRuns, RunFiles, write_log_line, write_log_lines
from tione_server.models import Pod, Run

TERM_EXIT = 128 + 15
"""Exit code of a pod ended by SIGTERM."""


class SimulateExecutor(FileBackedRuns):
    """Timeline-driven pods; see the module docstring."""

    name = "simulate"

    def __init__(
        self,
        *,
        data_dir: Path,
        submit_seconds: float = 1.0,
        start_seconds: float = 2.0,
        run_seconds: float = 10.0,
        stop_seconds: float = 1.0,
    ) -> None:
        self.files = RunFiles(data_dir)
        self.submit_seconds = submit_seconds
        self.start_seconds = start_seconds
        self.run_seconds = run_seconds
        self.stop_seconds = stop_seconds

    def _run_seconds(self, spec: RunSpec) -> float:
        try:
            return float(spec.env.get("TI_SIMULATE_RUN_SECONDS", self.run_seconds))
        except ValueError:
            return self.run_seconds

    @staticmethod
    def _exit_code(spec: RunSpec, pod: PodSpec, decider: PodSpec | None) -> int:
        if pod is not decider:
            return 0
        try:
            return int(spec.env.get("TI_SIMULATE_EXIT_CODE", "0"))
        except ValueError:
            return 1

    def submit(self, spec: RunSpec, now: float) -> Submission:
        return Submission(ready=now - spec.requested_at >= self.submit_seconds)

    def launch(self, spec: RunSpec, pods: Sequence[Pod], now: float) -> dict[str, str]:
        by_name = {p.name: p for p in spec.pods}
        decider = _decider(spec)  # once per call, not per pod: O(pods) per run (issue 7 B4)
        started = now + self.start_seconds
        duration = self._run_seconds(spec)
        for pod in pods:
            ps = by_name[pod.name]
            out = self.files.log(spec.run_id, pod.name, "stdout")
            lines = [(_ns(started), f"[simulate] {pod.name} started: {ps.command or '(no command)'}")]
            if ps.command == IDLE or _waits(spec, ps):
                write_log_lines(out, lines)
                continue
            lines += [(_ns(started + s), f"[simulate] step {s}/{int(duration)}") for s in range(1, int(duration))]
            code = self._exit_code(spec, ps, decider)
            ending = (_ns(started + duration), f"[simulate] exited with code {code}")
            if code == 0:
                write_log_lines(out, [*lines, ending])
            else:
                write_log_lines(out, lines)
                write_log_lines(self.files.log(spec.run_id, pod.name, "stderr"), [ending])
        return {pod.name: "" for pod in pods}  # the timeline is the pod's launched_at: no handle needed

    def observe(self, spec: RunSpec, run: Run, now: float) -> dict[str, Observation]:
        by_name = {p.name: p for p in spec.pods}
        decider = _decider(spec)
        duration = self._run_seconds(spec)
        found: dict[str, Observation] = {}
        for pod in run.pods:
            if pod.launched_at is None:
                continue
            ps = by_name.get(pod.name)
            started = pod.launched_at + self.start_seconds
            ended: float | None = None
            code = 0
            if ps is not None and ps.command != IDLE and not _waits(spec, ps):
                ended, code = started + duration, self._exit_code(spec, ps, decider)
            if run.term_sent_at is not None:
                stop_end = run.term_sent_at if run.kill_sent else run.term_sent_at + self.stop_seconds
                if ended is None or stop_end < ended:
                    ended, code = stop_end, TERM_EXIT
            if ended is not None and now >= ended:
                found[pod.name] = Observation("EXITED", started_at=min(started, ended), ended_at=ended, exit_code=code)
            elif now >= started:
                found[pod.name] = Observation("RUNNING", started_at=started)
            else:
                found[pod.name] = Observation("PENDING")
        return found

    def next_change(self, spec: RunSpec, run: Run, now: float) -> float | None:
        """The next event on the run's timeline after `now` (ready to submit, a pod running, a pod exiting):
        everything is computed from stored times, so the runner needs to look only then."""
        if not run.pods:  # SUBMITTING: ready once its time has come
            return spec.requested_at + self.submit_seconds
        by_name = {p.name: p for p in spec.pods}
        duration = self._run_seconds(spec)
        upcoming = math.inf
        for pod in run.pods:
            if pod.launched_at is None:
                continue
            ps = by_name.get(pod.name)
            started = pod.launched_at + self.start_seconds
            ended = math.inf
            if ps is not None and ps.command != IDLE and not _waits(spec, ps):
                ended = started + duration
            if run.term_sent_at is not None:
                ended = min(ended, run.term_sent_at if run.kill_sent else run.term_sent_at + self.stop_seconds)
            for event in (min(started, ended), ended):
                if now < event < upcoming:
                    upcoming = event
        return upcoming

    def signal(self, spec: RunSpec, run: Run, pods: Sequence[Pod], *, kill: bool, now: float) -> None:
        # Lines the timeline had scheduled after the stop never happen.
        for pod in pods:
            for stream in STREAMS:
                path = self.files.log(spec.run_id, pod.name, stream)
                kept = list(self.files.read_log(spec.run_id, pod.name, stream, end_ns=_ns(now)))
                with contextlib.suppress(OSError):
                    path.unlink()
                for line in kept:
                    write_log_line(path, line.ns, line.text)
            write_log_line(self.files.log(spec.run_id, pod.name, "stdout"), _ns(now), "[simulate] terminated")


def _ns(t: float) -> int:
    return int(t * 1_000_000_000)


def _decider(spec: RunSpec) -> PodSpec | None:
    """The pod whose exit code decides the run (spec §6.5): the launcher, else the first worker."""
    for p in spec.pods:
        if p.role == "LAUNCHER":
            return p
    for p in spec.pods:
        if p.role != "PS":
            return p
    return spec.pods[0] if spec.pods else None


def _waits(spec: RunSpec, pod: PodSpec) -> bool:
    """PS pods of PS_WORKER serve until the workers are done, like real parameter servers."""
    return spec.mode == "PS_WORKER" and pod.role == "PS"
