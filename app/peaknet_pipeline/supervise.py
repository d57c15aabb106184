"""What the driver does when a member's run() ends: keep its status, restart it, or end the run.

A run() that returns is a member that finished (or could not start: state 'failed', with the one error to
show). A run() that raises is a process that died: Ray restarts inference and writer actors up to
lifecycle.max_restarts (their __init__ runs again) and the driver calls run() again; producers and members
out of restarts are marked failed in the coordinator, so the stages after them stop waiting.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import ray

from .coordinator import MemberStatus
from .stages.launch import RESTARTABLE, Member

log = logging.getLogger(__name__)
RESTART_BURST_S = 30.0  # "actor is restarting" errors closer together than this belong to one death


class RunAborted(Exception):
    """The run cannot go on: a member could not start, a stage has no members left, nothing moved."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class Ended:
    """What became of one run() call."""

    status: MemberStatus | None = None  # finished (or failed to start)
    restarted: bool = False  # died and was restarted: run() is called again


def death_message(exc: BaseException) -> str:
    """The first line of Ray's error, without its traceback."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class Supervisor:
    def __init__(self, coordinator, max_restarts: int, members: list[Member]):
        self._coordinator = coordinator
        self._max_restarts = max_restarts
        self._members = members
        self._gone: set[str] = set()

    def ended(self, ref: ray.ObjectRef, member: Member) -> Ended:
        try:
            status = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # run() raised: the process lives, the member is broken
            self._gone.add(member.name)
            cause = exc.cause if exc.cause is not None else exc
            raise RunAborted(
                "member_failed", f"{member.stage} {member.name}: {type(cause).__name__}: {cause}"
            ) from None
        except ray.exceptions.RayError as exc:
            return self._died(member, exc)
        if status.state == "failed":
            self._gone.add(member.name)
            raise RunAborted("member_failed", f"{member.stage} {member.name}: {status.error}")
        return Ended(status=status)

    def _died(self, member: Member, exc: BaseException) -> Ended:
        why = death_message(exc)
        if isinstance(exc, ray.exceptions.ActorUnavailableError) and member.stage in RESTARTABLE:
            # Ray is restarting it (it enforces max_restarts; past that the error is ActorDiedError). The
            # error repeats while the new process starts: one death is the first of a burst.
            now = time.monotonic()
            if now - member.unavailable_since > RESTART_BURST_S:
                member.restarts += 1
                log.warning(
                    "%s %s died (%s); Ray restarts it (restart %d, lifecycle.max_restarts=%d); "
                    "the frames it held are counted lost",
                    member.stage, member.name, why, member.restarts, self._max_restarts,
                )  # fmt: skip
                self._coordinator.mark_restarting.remote(member.stage, member.name, why)
            member.unavailable_since = now
            return Ended(restarted=True)
        log.error("%s %s died for good: %s", member.stage, member.name, why)
        self._coordinator.mark_failed.remote(member.stage, member.name, why)
        self._gone.add(member.name)
        self._check_stage_left(member.stage)
        status = MemberStatus(stage=member.stage, member=member.name, state="failed", error=why)
        status.info["restarts"] = member.restarts
        return Ended(status=status)

    def _check_stage_left(self, stage: str) -> None:
        """A consumer stage with no member left would leave its input queue full for ever."""
        if stage == "produce":
            return  # the stages after it drain what was produced and end
        if all(m.name in self._gone for m in self._members if m.stage == stage):
            raise RunAborted("stage_failed", f"every {stage} member died and none can be restarted")

    def failures(self) -> list[str]:
        return sorted(self._gone)
