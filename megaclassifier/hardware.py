"""Devices, precisions and CPU thread counts.

Device specifications, as ``--device`` accepts them::

    auto      CUDA device 0 when CUDA is available, else the CPU
    cpu       the CPU
    cuda      CUDA device 0
    cuda:1    CUDA device 1
    1         CUDA device 1 (the reference's integer --device)

:func:`parse_device` checks the syntax without importing torch;
:func:`resolve_device` asks torch what the machine has.
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path

from megaclassifier import platform
from megaclassifier.constants import DEVICE_HELP, PRECISIONS
from megaclassifier.errors import MegaClassifierError

logger = logging.getLogger(__name__)


_CUDA_RE = re.compile(r"cuda:(\d+)")


def parse_device(spec: str | int) -> str:
    """Normalise a device specification to ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        ValueError: not one of the accepted forms.
    """
    text = str(spec).strip().lower()
    if text in ("auto", "cpu", "cuda"):
        return text
    if text.isdigit():
        return f"cuda:{int(text)}"
    if _CUDA_RE.fullmatch(text):
        return text
    raise ValueError(f"unknown device {spec!r}; use {DEVICE_HELP}")


def resolve_device(spec: str | int) -> str:
    """Turn a device specification into the device to use: ``cpu`` or ``cuda:N``.

    Raises:
        MegaClassifierError: a CUDA device is asked for and is not there.
    """
    try:
        device = parse_device(spec)
    except ValueError as e:
        raise MegaClassifierError(f"--device: {e}") from None
    if device == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if device == "auto":
        return "cuda:0" if available else "cpu"
    if not available:
        raise MegaClassifierError(f"--device {spec}: CUDA is not available on this machine; use --device cpu or auto")
    index = 0 if device == "cuda" else int(device.split(":")[1])
    count = torch.cuda.device_count()
    if index >= count:
        raise MegaClassifierError(f"--device {spec}: this machine has {count} CUDA device(s), numbered from 0")
    return f"cuda:{index}"


def check_precision(precision: str, device: str) -> None:
    """Check that ``precision`` can run on ``device`` (a resolved device).

    Raises:
        MegaClassifierError: fp16 on the CPU, or bf16 on a GPU without bf16 support.
    """
    if precision not in PRECISIONS:
        raise MegaClassifierError(f"--precision {precision}: use one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device == "cpu":
        raise MegaClassifierError("--precision fp16 needs a CUDA device; on the CPU use bf16 or fp32")
    if precision == "bf16" and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_bf16_supported():
            raise MegaClassifierError(f"--precision bf16: {device} does not support bfloat16; use fp16 or fp32")


def available_cpus() -> int:
    """Logical CPUs this process may run on (affinity mask and cgroup quota applied)."""
    affinity = platform.affinity_cpus()
    cpus = len(affinity) if affinity else os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, quota)
    return max(1, cpus)


def physical_cpu_count() -> int:
    """Physical cores this process may use: the right number of inference threads.

    Hyper-threads of one core are counted once (Linux sysfs topology), and
    the cgroup CPU quota of a container caps the count. Elsewhere, psutil is
    asked when installed, else the logical CPU count is used.
    """
    cpus = platform.affinity_cpus() or []
    cores: set[str] = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores = set()
            break
    if cores:
        count = len(cores)
    else:
        count = 0
        try:
            import psutil

            count = psutil.cpu_count(logical=False) or 0
        except ImportError:
            pass
        count = count or len(cpus) or os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        count = min(count, quota)
    return max(1, count)


def _cgroup_cpu_quota() -> int | None:
    """CPUs allowed by a cgroup v2 (``cpu.max``) or v1 (``cpu.cfs_quota_us``) quota, if any."""
    try:
        fields = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if fields and fields[0] != "max":
            return max(1, math.ceil(int(fields[0]) / int(fields[1])))
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        pass
    return None
