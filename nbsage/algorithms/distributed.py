"""Training across the hosts of one job: who this host is, and how the hosts talk to each other.

A place runs a job with InstanceCount N as N runtime processes, the hosts algo-1 ... algo-N, each
with its own job root. Each root's resourceconfig.json names all hosts and the current one
(SageMaker's contract; script mode turns it into SM_HOSTS / SM_CURRENT_HOST), and each process
gets the torchrun-style variables MASTER_ADDR and MASTER_PORT (a free port on the first host),
RANK, WORLD_SIZE and LOCAL_RANK=0 (`nbsage.backends.multi_host` sets them, on every place).
This module turns that into what an algorithm needs:

- `cluster(env)`: the hosts, this host's rank, whether it is the master, the master's address;
- `xgboost_collective(cluster)`: xgboost's collective (Rabit) across the hosts. The first host
  runs the tracker on MASTER_PORT, as SageMaker's XGBoost container does (xgboost.dask runs the
  same tracker on its scheduler), and `xgboost.train` inside the block trains one model from all
  hosts' data. With a loopback MASTER_ADDR (every host on this machine) every port of it listens
  on loopback only;
- `torch_process_group(env)`: torch.distributed across the hosts (gloo on CPU, NCCL on CUDA),
  with `wrap` (DistributedDataParallel), `shard` (DistributedSampler's split of a list),
  `sampler`, `agree` and `mean` for the training loop, and `reduce_arrays` / `gather_objects`
  for algorithms that keep their own numpy model (BlazingText's hogwild kernels).

Every helper is a no-op on one host, so an algorithm calls them unconditionally. Only this
module imports xgboost or torch.distributed, and only when there are several hosts.

A torch algorithm's train(env), in outline:

    from nbsage.algorithms import distributed
    with distributed.torch_process_group(env) as cluster:        # gloo / NCCL; nothing on one host
        records = distributed.channel_share(env, "train", records)  # FullyReplicated: rows rank::N
        net = distributed.wrap(Network(...), env.device)           # DDP averages the gradients
        batches = distributed.agree(len(loader), "min")             # every rank takes as many steps
        for epoch in range(epochs):
            ...                                                     # loss.backward(); optimizer.step()
            loss = distributed.mean(epoch_loss, weight=rows)        # what the master logs and reports
            if cluster.is_master:
                env.metric("train:loss", loss, step=epoch)
        if cluster.is_master:
            save(distributed.unwrap(net), env.model_dir)
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterator, Sequence

from nbsage.errors import NBSageError

# how long a host waits for the others to join (the first host's tracker or process group)
JOIN_TIMEOUT_SECONDS = float(os.environ.get("NBSAGE_DISTRIBUTED_TIMEOUT", "300"))


class DistributedError(NBSageError):
    """The hosts of a job could not reach each other."""


@dataclass(frozen=True)
class Cluster:
    """The hosts of one job as this host sees them."""

    hosts: tuple[str, ...]
    current_host: str
    master_addr: str
    master_port: int

    @property
    def size(self) -> int:
        return len(self.hosts)

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def is_master(self) -> bool:
        """The first host: it saves the model and reports the metrics."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def cluster(env=None) -> Cluster:
    """This host's view of the job's hosts, from the TrainingEnvironment (or SM_HOSTS/SM_CURRENT_HOST).

    MASTER_ADDR defaults to the first host's name and MASTER_PORT to 7777, the values SageMaker's
    torchrun launch uses, for a runtime started by hand with a multi-host resourceconfig.json.
    """
    if env is not None:
        hosts, current = list(env.hosts), env.current_host
    else:
        hosts = json.loads(os.environ.get("SM_HOSTS", '["algo-1"]'))
        current = os.environ.get("SM_CURRENT_HOST", hosts[0])
    hosts = sorted(hosts)
    if current not in hosts:
        raise DistributedError(f"current host {current!r} is not one of the job's hosts {hosts}")
    try:
        port = int(os.environ.get("MASTER_PORT", "7777"))
    except ValueError:
        raise DistributedError(f"MASTER_PORT={os.environ['MASTER_PORT']!r} is not a port number") from None
    return Cluster(tuple(hosts), current, os.environ.get("MASTER_ADDR", hosts[0]), port)


def _ask_master(addr: str, port: int, timeout: float, what: str) -> dict:
    """Connect to the master's rendezvous on addr:port (retrying until it listens) and read its answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((addr, port), timeout=10) as conn:
                data = b""
                while chunk := conn.recv(4096):
                    data += chunk
            return json.loads(data)
        except (OSError, ValueError) as e:
            if time.monotonic() >= deadline:
                raise DistributedError(f"{what} at {addr}:{port} did not answer within {timeout:g} s ({e}); "
                                       "did the first host (algo-1) start, and can this host reach it?") from None
            time.sleep(0.05)


class _Rendezvous:
    """The master's answer to the other hosts on MASTER_PORT: one JSON object per connection.

    xgboost's tracker cannot be probed (a connection that does not speak its protocol is logged as
    a failed worker) and xgboost's own connect retry backs off for seconds, so the tracker listens
    on a port of its own choosing and this tells the other hosts which one, once it is up.
    """

    def __init__(self, addr: str, port: int, answer: dict, count: int):
        import threading
        try:
            self.sock = socket.create_server((addr, port))
        except OSError as e:
            raise DistributedError(f"the first host could not listen on {addr}:{port} (MASTER_ADDR:MASTER_PORT): "
                                   f"{e}") from None
        self.payload, self.count = json.dumps(answer).encode(), count
        threading.Thread(target=self._serve, daemon=True, name="nbsage-rendezvous").start()

    def _serve(self) -> None:
        for _ in range(self.count):
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            with conn:
                try:
                    conn.sendall(self.payload)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


# ---- XGBoost ------------------------------------------------------------------------------------


@contextmanager
def xgboost_collective(cl: Cluster, timeout: float | None = None) -> Iterator[Cluster]:
    """xgboost's collective across the job's hosts for the duration of the block.

    The master starts a RabitTracker and tells the other hosts its port through MASTER_PORT (see
    _Rendezvous); all join. Ranks follow host order, so rank 0 is the master.
    """
    if not cl.distributed:
        yield cl
        return
    from xgboost import collective
    timeout = JOIN_TIMEOUT_SECONDS if timeout is None else timeout
    tracker = rendezvous = None
    if cl.is_master:
        from xgboost.tracker import RabitTracker
        try:
            tracker = RabitTracker(n_workers=cl.size, host_ip=cl.master_addr, port=0, sortby="task")
            tracker.start()
        except Exception as e:
            raise DistributedError(f"the first host could not start xgboost's tracker on {cl.master_addr}: {e}") from None
        args: dict[str, Any] = dict(tracker.worker_args())
        rendezvous = _Rendezvous(cl.master_addr, cl.master_port, {"tracker_port": args["dmlc_tracker_port"]},
                                 cl.size - 1)
    else:
        answer = _ask_master(cl.master_addr, cl.master_port, timeout, "the first host (xgboost's tracker)")
        args = {"dmlc_tracker_uri": cl.master_addr, "dmlc_tracker_port": int(answer["tracker_port"])}
    args["dmlc_task_id"] = f"{cl.rank:05d}-{cl.current_host}"  # sortby="task": rank = host order
    _keep_xgboost_on_loopback(cl)
    try:
        with collective.CommunicatorContext(**args):
            yield cl
    finally:
        if rendezvous is not None:
            rendezvous.close()
    if tracker is not None:
        tracker.wait_for()


def _keep_xgboost_on_loopback(cl: Cluster) -> None:
    """All hosts on this machine (a loopback MASTER_ADDR): the workers' peer ports listen on loopback
    too, not on every interface as xgboost binds them (see nbsage.algorithms.loopback). A cluster
    address the user configured (other machines) leaves xgboost as it is."""
    from nbsage.algorithms.loopback import bind_to_loopback, is_loopback
    if not is_loopback(cl.master_addr):
        return
    import xgboost.core
    reason = bind_to_loopback(getattr(xgboost.core, "_LIB", None))
    if reason:
        print(f"nbsage: {reason}; xgboost's collective listens on all interfaces", file=sys.stderr, flush=True)


def allreduce(values, op: str = "sum"):
    """Element-wise sum / max / min of a numpy array over the hosts (inside xgboost_collective)."""
    import numpy as np
    from xgboost import collective
    array = np.ascontiguousarray(values)
    if not collective.is_distributed():
        return array
    return collective.allreduce(array, {"sum": collective.Op.SUM, "max": collective.Op.MAX,
                                        "min": collective.Op.MIN}[op])


def broadcast(value, root: int = 0):
    """A picklable value from host `root` to every host (inside xgboost_collective)."""
    from xgboost import collective
    if not collective.is_distributed():
        return value
    return collective.broadcast((value,), root)[0]  # wrapped: xgboost refuses to broadcast None


# ---- PyTorch ------------------------------------------------------------------------------------


@contextmanager
def torch_process_group(env=None, device: str | None = None, timeout: float | None = None) -> Iterator[Cluster]:
    """torch.distributed across the job's hosts for the duration of the block; yields the Cluster.

    Backend: NCCL when `device` (default env.device) is CUDA, gloo otherwise. One rank per host:
    rank = host index, world size = host count, the store on MASTER_ADDR:MASTER_PORT (listening on
    loopback only when MASTER_ADDR is a loopback address). On a GPU host the rank uses
    cuda:LOCAL_RANK. On one host nothing is initialised.
    """
    cl = cluster(env)
    if not cl.distributed:
        yield cl
        return
    import torch
    import torch.distributed as dist
    device = device or (env.device if env is not None else "cpu")
    backend = "nccl" if str(device).startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    from nbsage.algorithms.loopback import is_loopback
    local = is_loopback(cl.master_addr)
    if local and backend == "gloo":
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # all hosts on this machine: stay on loopback
    wait = timedelta(seconds=JOIN_TIMEOUT_SECONDS if timeout is None else timeout)
    try:
        if local:  # the store's server would listen on every interface: give it a loopback socket
            dist.init_process_group(backend, store=_loopback_store(cl, wait), rank=cl.rank, world_size=cl.size,
                                    timeout=wait)
        else:
            dist.init_process_group(backend, init_method=f"tcp://{cl.master_addr}:{cl.master_port}", rank=cl.rank,
                                    world_size=cl.size, timeout=wait)
    except Exception as e:
        raise DistributedError(f"host {cl.current_host} could not join torch.distributed ({backend}) at "
                               f"{cl.master_addr}:{cl.master_port}: {e}") from None
    try:
        yield cl
        # leave together: a rank tearing gloo down while another still talks to it aborts
        # ("terminate called without an active exception")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _loopback_store(cl: Cluster, timeout: timedelta):
    """torch's TCPStore on MASTER_ADDR:MASTER_PORT, its server (on the master) listening on loopback
    only: torch binds the store's server to every interface unless handed a listening socket."""
    from torch.distributed import TCPStore
    if not cl.is_master:
        return TCPStore(cl.master_addr, cl.master_port, cl.size, False, timeout=timeout)
    family, _, _, _, address = socket.getaddrinfo(cl.master_addr, cl.master_port, proto=socket.IPPROTO_TCP)[0]
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
        listener.listen(128)
    except OSError as e:
        listener.close()
        raise DistributedError(f"the first host could not listen on {cl.master_addr}:{cl.master_port} "
                               f"(MASTER_ADDR:MASTER_PORT): {e}") from None
    return TCPStore(cl.master_addr, cl.master_port, cl.size, True, timeout=timeout, master_listen_fd=listener.detach())


def _torch_distributed() -> bool:
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    return dist.is_available() and dist.is_initialized()


def wrap(module, device: str = "cpu"):
    """`module` on `device`, in DistributedDataParallel when a process group is up (gradients averaged)."""
    module = module.to(device)
    if not _torch_distributed():
        return module
    from torch.nn.parallel import DistributedDataParallel
    if str(device).startswith("cuda"):
        import torch
        return DistributedDataParallel(module, device_ids=[torch.cuda.current_device()])
    return DistributedDataParallel(module)


def unwrap(module):
    """The module inside DistributedDataParallel (what to save), or the module itself."""
    return getattr(module, "module", module)


def shard(items: Sequence, cl: Cluster | None = None) -> list:
    """This host's share of `items`: items[rank::size], DistributedSampler's split without padding.

    Use it for FullyReplicated data (every host holds all of it); a ShardedByS3Key channel is
    already this host's share.
    """
    cl = cl or cluster()
    return list(items[cl.rank::cl.size]) if cl.distributed else list(items)


def channel_share(env, channel: str, items: Sequence) -> list:
    """This host's share of items read from `channel`: all of a ShardedByS3Key channel, else shard()."""
    ch = env.channels.get(channel)
    if ch is not None and ch.distribution == "ShardedByS3Key":
        return list(items)
    return shard(items, cluster(env))


def sampler(dataset, shuffle: bool = True, seed: int = 0, drop_last: bool = False):
    """A DistributedSampler for a torch Dataset when a process group is up, else None.

    Call `sampler.set_epoch(epoch)` each epoch so that shuffles differ between epochs.
    """
    if not _torch_distributed():
        return None
    from torch.utils.data.distributed import DistributedSampler
    return DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)


def agree(value: float, how: Callable | str = "min") -> float:
    """The min / max / sum of a number over the hosts, e.g. the batch count every rank must run.

    DistributedDataParallel needs every rank to take the same number of steps; ranks with
    different amounts of data agree on the smallest count.
    """
    if not _torch_distributed():
        return value
    import torch
    import torch.distributed as dist
    name = how if isinstance(how, str) else how.__name__
    ops = {"min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX, "sum": dist.ReduceOp.SUM}
    tensor = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(tensor, op=ops[name])
    result = tensor.item()
    return int(result) if isinstance(value, int) else result


def mean(value: float, weight: float = 1.0) -> float:
    """The weighted mean of a number over the hosts (a loss or metric each host computed on its share)."""
    if not _torch_distributed():
        return value
    import torch
    import torch.distributed as dist
    tensor = torch.tensor([float(value) * weight, float(weight)], dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor[0].item() / tensor[1].item() if tensor[1].item() else 0.0


def barrier() -> None:
    """Wait until every host gets here (e.g. before the master saves what all hosts trained)."""
    if _torch_distributed():
        import torch.distributed as dist
        dist.barrier()


def broadcast_object(value, root: int = 0):
    """A picklable value from host `root` to every host when a process group is up, else the value itself
    (e.g. the checkpoint the master resumes from, so every rank starts from the same state)."""
    if not _torch_distributed():
        return value
    import torch.distributed as dist
    box = [value]
    dist.broadcast_object_list(box, src=root)
    return box[0]


def gather_objects(value) -> list:
    """Every host's picklable `value`, in rank order, on every host ([value] on one host)."""
    if not _torch_distributed():
        return [value]
    import torch.distributed as dist
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def reduce_arrays(arrays: Sequence, how: str = "mean") -> None:
    """Replace each float numpy array, in place, by its element-wise mean (or sum) over the hosts.

    For models trained outside torch on every host and combined now and then (model averaging);
    a no-op on one host. The arrays must be C-contiguous and of the same shape on every host.
    """
    if not _torch_distributed():
        return
    import torch
    import torch.distributed as dist
    if how not in ("mean", "sum"):
        raise ValueError(f"reduce_arrays: how={how!r}; use 'mean' or 'sum'")
    for array in arrays:
        if not array.flags.c_contiguous or not array.flags.writeable:
            raise ValueError("reduce_arrays: the arrays must be writeable and C-contiguous")
        tensor = torch.from_numpy(array)  # shares the array's memory: the result lands in it
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        if how == "mean":
            tensor /= dist.get_world_size()
