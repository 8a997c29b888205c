"""Running a pipeline step on many processes launched by ``torchrun``.

``torchrun --nproc-per-node N -m value_lens build ...`` starts N copies of the command with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set.
:func:`from_env` reads them (``None`` outside torchrun); :func:`process_group` opens the
process group around the collective work (gloo on CPUs, NCCL on CUDA devices, each rank on
``cuda:LOCAL_RANK``) and closes it afterwards. Rank 0 alone writes files and prints
(:attr:`Launch.writer`).

Example:
    >>> env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1",
    ...        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    >>> launch = from_env(env)
    >>> launch.writer, device_for("cuda", launch), device_for("cpu", launch)
    (False, 'cuda:1', 'cpu')
    >>> from_env({}) is None
    True
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from value_lens.errors import InputError

__all__ = ["ENV_VARS", "Launch", "device_for", "from_env", "muted", "process_group"]

#: what torchrun sets in every process it starts
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Launch:
    """This process's place among the ``world`` processes torchrun started."""

    rank: int
    world: int
    local_rank: int

    @property
    def writer(self) -> bool:
        """Rank 0 writes the files and prints; the others only compute."""
        return self.rank == 0


def from_env(env: Mapping[str, str] | None = None) -> Launch | None:
    """The launch torchrun describes in ``env`` (default ``os.environ``); None outside torchrun."""
    env = os.environ if env is None else env
    present = [k for k in ENV_VARS if k in env]
    if not present:
        return None
    if len(present) < len(ENV_VARS):
        missing = [k for k in ENV_VARS if k not in env]
        raise InputError(
            f"torch.distributed environment is incomplete: {missing} are unset; launch with "
            "torchrun (which sets all of them) or unset RANK/WORLD_SIZE for one process"
        )
    try:
        rank, world, local = (int(env[k]) for k in ENV_VARS[:3])
    except ValueError:
        raise InputError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers, got {dict(env)}") from None
    if not 0 <= rank < world:
        raise InputError(f"RANK={rank} must be in [0, WORLD_SIZE={world})")
    return Launch(rank, world, local)


def device_for(device: str, launch: Launch | None) -> str:
    """``device`` for this process: a bare ``"cuda"`` becomes ``cuda:LOCAL_RANK`` under torchrun."""
    if launch is not None and device == "cuda":
        return f"cuda:{launch.local_rank}"
    return device


@contextmanager
def process_group(launch: Launch | None, device: torch.device) -> Iterator[bool]:
    """Inside: a ``torch.distributed`` process group over the launch's ranks (yields True), or
    nothing to do (yields False: no launch, or a group someone else opened, which is kept).

    The backend is NCCL when ``device`` is a CUDA device (made this process's current device),
    else gloo. The group this opened is destroyed on the way out, on errors too.
    """
    dist = torch.distributed
    if launch is None or (dist.is_available() and dist.is_initialized()):
        yield launch is not None
        return
    backend = "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
        backend = "nccl"
    dist.init_process_group(
        backend, init_method="env://", rank=launch.rank, world_size=launch.world
    )
    try:
        yield True
    finally:
        dist.destroy_process_group()


@contextmanager
def muted(launch: Launch | None) -> Iterator[None]:
    """Inside: stdout and stderr silenced on ranks other than 0 (errors still propagate)."""
    if launch is None or launch.writer:
        yield
        return
    with open(os.devnull, "w") as sink:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
