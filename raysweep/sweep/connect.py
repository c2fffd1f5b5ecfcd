"""Joining a Ray cluster: which auth token a driver sends where, and a quick check that the address answers.

A driver joins the cluster at ``--address`` (or ``RAY_ADDRESS``). Before Ray's own connect, which
retries for minutes and prints its C++ log lines on the way, :func:`prepare_connection`

* uses the token of a local cluster that ``raysweep cluster up --local`` recorded for exactly
  that address (no environment variables needed); a token is never sent to any other address;
* refuses a ``RAY_AUTH_TOKEN_PATH`` that names no readable token (a cluster stopped since);
* asks the GCS there for its cluster id, with a deadline of a few seconds: an address that refuses
  the connection, does not answer or rejects the token is a one-line error.

``ray.init`` also sets the driver's SIGTERM handler; the command line's own
(:func:`interrupt_on_sigterm`, which stops a sweep as Ctrl-C does) is put back after it.

Ray is imported only inside the functions.
"""

from __future__ import annotations

import inspect
import os
import shlex
import signal
import socket
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import logging

from raysweep.errors import UserError

logger = logging.getLogger(__name__)

__all__ = ["PROBE_TIMEOUT_S", "Target", "check_token_path", "prepare_connection", "probe", "recorded_token", "resolve_target"]

#: How long the check before Ray's connect waits for the GCS to answer. A GCS answers its
#: cluster id in milliseconds even when busy; a driver that is slow to be accepted after that is
#: left to Ray's own timeouts.
PROBE_TIMEOUT_S = 3.0

_TOKEN_VARS = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


@dataclass(frozen=True)
class Target:
    """The cluster a driver is to join: its address and where the address came from."""

    address: str
    flag: str
    """How the user gave it, for error messages: ``--address`` or ``RAY_ADDRESS``."""
    resumed: str | None = None
    """The sweep being resumed, whose record (or ``resume --address``) gave the address."""
    given: str | None = None
    """What the user gave when ``address`` is what Ray found for it (``auto``)."""

    @property
    def label(self) -> str:
        shown = f"{self.given} ({self.address})" if self.given else self.address
        return f"--address {shown}" if self.flag == "--address" else f"RAY_ADDRESS={shown}"

    @property
    def host_port(self) -> tuple[str, int] | None:
        """``(host, port)`` of a plain GCS address; ``None`` for ``auto``, ``ray://`` and the like."""
        host, sep, port = self.address.rpartition(":")
        if not sep or "://" in self.address or not port.isdigit() or not host:
            return None
        return host.strip("[]"), int(port)


def resolve_target(address: str | None, resumed: str | None = None) -> Target | None:
    """The cluster to join: ``address``, else ``RAY_ADDRESS``; ``None`` for an embedded local Ray.
    ``resumed``: the sweep being resumed, which gave ``address``. An address Ray could not parse is
    a ``UserError`` (Ray's own error is a traceback)."""
    if address:
        target = Target(address, "--address", resumed)
    else:
        from_env = os.environ.get("RAY_ADDRESS", "").strip()
        target = Target(from_env, "RAY_ADDRESS") if from_env else None
    if target is not None:
        check_address_form(target)
    return target


def check_address_form(target: Target) -> None:
    """Refuse what is not a Ray address a sweep can use: ``auto``, ``local`` or ``HOST:PORT`` of the
    head's GCS (a ``scheme://`` address other than ``ray://`` is left to Ray)."""
    address = target.address
    if address.startswith("ray://"):
        # Through Ray Client, Ray Tune runs the sweep's loop on the cluster, as a task: its callbacks
        # (MLflow's writer, the progress, the sweep's own accounting) are not this driver's, and the
        # sweep ran its trials and then was taken for interrupted, with no trial run in MLflow.
        raise UserError(
            f"{target.label}: Ray Client (ray://) addresses are not supported: Ray Tune would run the sweep on the "
            "cluster, away from its MLflow logging; give the head node's HOST:6379 from a machine that reaches it, "
            "or submit the sweep to the cluster with `ray job submit -- raysweep run ...`"
        )
    if address.startswith(("http://", "https://")):
        raise UserError(
            f"{target.label}: that is the address of Ray's dashboard and job server (the one `ray job submit` "
            "takes), not of the cluster; give the head node's HOST:PORT (e.g. 127.0.0.1:6379, as "
            "`raysweep cluster up --local` and `ray start --head` print it)"
        )
    if address in ("auto", "local") or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if sep and host.strip("[]") and port.isdigit() and 0 < int(port) < 65536 and _host_name(host.strip("[]")):
        return
    raise UserError(
        f"{target.label}: not a Ray address; give the head node's HOST:PORT (e.g. 127.0.0.1:6379, as "
        "`raysweep cluster up --local` and `ray start --head` print it) or auto"
    )


def _host_name(host: str) -> bool:
    """Whether ``host`` can be looked up at all (a label over 63 characters cannot: the lookup
    raised UnicodeError, a traceback)."""
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return True


def recorded_token(target: Target, state_dir: Path | None = None) -> Path | None:
    """The token file of the running local cluster recorded (by ``cluster up --local``) for this
    very address: its port on this machine, under any of the machine's own addresses (``auto``,
    a Ray job's driver and the sweep's record name it by the address Ray gives the head, the
    machine's own, not 127.0.0.1)."""
    from raysweep.cluster import LOOPBACK, load_local_cluster
    from raysweep.cluster._processes import _node_pids

    host_port = target.host_port
    if host_port is None or not _this_machine(host_port[0]):
        return None
    try:
        cluster = load_local_cluster(state_dir)
    except UserError:
        return None
    if cluster is None or cluster.address != f"{LOOPBACK}:{host_port[1]}":
        return None
    # A cluster that died since may have left its port to some other Ray: its token is not for that one.
    if not cluster.token_path.is_file() or not _node_pids(cluster.head, cluster):
        return None
    return cluster.token_path


def _this_machine(host: str) -> bool:
    """Whether ``host`` is one of this machine's own addresses: an address of one of its network
    interfaces (not whatever a socket can be bound to: with ``ip_nonlocal_bind`` that is any)."""
    if host in ("127.0.0.1", "localhost"):
        return True
    try:
        address = socket.gethostbyname(host)
    except OSError:
        return False
    return address.startswith("127.") or address in _interface_addresses()


def _interface_addresses() -> set[str]:
    """The IPv4 addresses of this machine's network interfaces (Linux's ``SIOCGIFADDR``; none elsewhere)."""
    found: set[str] = set()
    try:
        import fcntl
        import struct

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe_socket:
            for _, name in socket.if_nameindex():
                try:
                    packed = fcntl.ioctl(probe_socket.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
                except OSError:
                    continue  # an interface without an IPv4 address
                found.add(socket.inet_ntoa(packed[20:24]))
    except (ImportError, OSError, AttributeError):
        pass
    return found


def check_token_path() -> None:
    """Refuse a ``RAY_AUTH_TOKEN_PATH`` that Ray would read but that holds no token."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not path or os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return
    try:
        empty = not Path(path).expanduser().read_text().strip()
        problem = "the file is empty" if empty else ""
    except FileNotFoundError:
        problem = "no such file (`raysweep cluster down --local` removes a local cluster's token)"
    except OSError as exc:
        problem = f"cannot read it ({exc.strerror or exc.__class__.__name__})"
    if problem:
        raise UserError(
            f"RAY_AUTH_TOKEN_PATH={path}: {problem}; `unset RAY_AUTH_TOKEN_PATH RAY_AUTH_MODE` "
            "(raysweep finds the token of a cluster `raysweep cluster up --local` started by itself) "
            "or point it at the cluster's token file"
        )


def _use_token(token_path: Path) -> None:
    """Send the token in ``token_path`` from this process on (and from the Ray workers it starts)."""
    os.environ.pop("RAY_AUTH_TOKEN", None)
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token_path)
    _reload_ray_auth()


def _reload_ray_auth() -> None:
    # Ray reads the auth mode into its cached config and the token into a cached loader; both
    # may have been read already when ray was imported.
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _token_hint() -> str:
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return (
            "this driver sends no auth token: if the cluster uses token authentication, set "
            "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH"
        )
    return "check that RAY_AUTH_TOKEN_PATH (or RAY_AUTH_TOKEN) holds the cluster's token"


def cannot_connect(target: Target, reason: str, listening: bool = True) -> UserError:
    """The one line a driver prints when it cannot join ``target``; ``listening``: something answered
    there (the token may be the matter), not a refused or silent port (then the token is not)."""
    label = target.label
    if target.resumed:  # the cluster the sweep ran on (or resume --address): resume can go elsewhere
        label += f" (to resume sweep {target.resumed} on)"
        other = (f"; continue it on another with: raysweep resume {shlex.quote(target.resumed)} --address HOST:PORT, "
                 "or --address local for a local Ray")
    else:
        other = f" (or {'leave --address out' if target.flag == '--address' else 'unset RAY_ADDRESS'} for a local Ray)"
    hint = f"; {_token_hint()}" if listening else ""
    return UserError(f"{label}: cannot connect to a Ray cluster there ({reason}); check the address{hint}{other}")


def probe(target: Target, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Ask the GCS at ``target`` for its cluster id, sending the token Ray would send; ``UserError`` if that fails.

    Addresses that are not ``host:port`` (``auto``, ``ray://...``) are left to Ray.
    """
    host_port = target.host_port
    if host_port is None:
        return
    try:
        socket.create_connection(host_port, timeout=timeout_s).close()
    except TimeoutError:
        raise cannot_connect(target, f"no answer within {timeout_s:g}s", listening=False) from None
    except OSError as exc:
        raise cannot_connect(target, exc.strerror or exc.__class__.__name__, listening=False) from None

    import grpc
    from ray._raylet import AuthenticationTokenLoader
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    _reload_ray_auth()
    metadata = tuple(AuthenticationTokenLoader.instance().get_token_for_http_header().items())
    # No proxy: Ray's own gRPC channels do not use one either.
    with grpc.insecure_channel(target.address, options=[("grpc.enable_http_proxy", 0)]) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=timeout_s, metadata=metadata)
        except grpc.RpcError as exc:
            code = exc.code() if callable(getattr(exc, "code", None)) else None
            if code == grpc.StatusCode.UNAUTHENTICATED:
                reason = "the cluster rejected this driver's auth token" if metadata else "the cluster requires an auth token"
            elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
                reason = f"something listens there but no Ray GCS answered within {timeout_s:g}s"
            else:
                reason = f"no Ray GCS answers there: {code.name if code else exc.__class__.__name__}"
            raise cannot_connect(target, reason) from None


def resolve_auto(target: Target) -> Target:
    """``auto`` as Ray resolves it (``RAY_ADDRESS``, else the cluster ``ray start`` started last on
    this machine, else any Ray running here), so that it gets the recorded token and the quick
    check as an address given in full does (it took 21 s of Ray's retries, and its log lines, to
    fail on a token cluster). Private API: ``ray._private.services.get_ray_address_from_environment``,
    checked on Ray 2.60."""
    if target.address != "auto":
        return target
    from ray._private.services import get_ray_address_from_environment

    try:
        found = get_ray_address_from_environment("auto", None)
    except ConnectionError:
        raise UserError(
            f"{target.label}: no running Ray cluster found on this machine; give the head node's HOST:PORT "
            "(e.g. 127.0.0.1:6379, as `raysweep cluster up --local` and `ray start --head` print it)"
        ) from None
    if not found or found == "auto":
        return target
    resolved = Target(found, target.flag, target.resumed, given="auto")
    check_address_form(resolved)  # RAY_ADDRESS may hold a ray:// or dashboard address
    return resolved


def prepare_connection(address: str | None, state_dir: Path | None = None, resumed: str | None = None) -> Target | None:
    """Everything before ``ray.init``: the target (``None``: an embedded Ray), its token, and the quick check."""
    target = resolve_target(address, resumed)
    if target is not None:
        target = resolve_auto(target)
    token = recorded_token(target, state_dir) if target is not None else None
    if token is not None:
        _use_token(token)
    else:
        check_token_path()
    if target is not None:
        probe(target)
    return target


def connect_ray(address: str | None, verbose: bool, before_init: Callable[[], Any] | None = None, resumed: str | None = None) -> bool:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start an embedded local Ray.

    Returns whether this call started Ray (an embedded local Ray that this process owns).
    ``before_init`` is called once the address has answered, right before ``ray.init``: work
    that may overlap Ray's start but must not happen for an address that is refused (it is not
    called for an address that cannot be checked first, such as ``auto`` or ``ray://``).

    An address that refuses, does not answer or rejects the token is a ``UserError`` within
    seconds (see :func:`prepare_connection`), before Ray's own connect would retry for minutes.
    """
    import ray

    from raysweep.cluster._nodes import ray_start_config

    if ray.is_initialized():
        _check_same_cluster(ray, address)
        return False
    level = logging.INFO if verbose else logging.ERROR
    target = prepare_connection(address, resumed=resumed)
    if before_init is not None and (target is None or target.host_port is not None):
        before_init()
    try:
        if target is not None:
            with _sigterm_kept():
                ray.init(address=target.address, logging_level=level, log_to_driver=verbose)
        else:
            def start() -> None:
                with _embedded_head(log_monitor=verbose), _own_process_group(), _sigterm_kept():
                    ray.init(include_dashboard=False, logging_level=level, log_to_driver=verbose, _system_config=ray_start_config())

            _on_a_lasting_thread(start)
    except (ConnectionError, RuntimeError) as exc:
        if target is None:
            raise
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise cannot_connect(target, first) from None
    return target is None


def _on_a_lasting_thread(start: Callable[[], None]) -> None:
    """Call ``start`` (the embedded Ray's ``ray.init``) on a thread that lives as long as the process.

    Ray starts its GCS server and raylet with ``PR_SET_PDEATHSIG`` (its fate-sharing: they die with
    their parent), and Linux sends that signal when the *thread* that started them ends, not the
    process. A sweep run on a worker thread (a thread pool, a web app's handler) lost its Ray as the
    thread ended: the process's exit then waited 60 s for the GCS ("Failed to connect to GCS within
    60 seconds") and ended with exit 1. The main thread lives as long as the process: ``start`` runs
    on it directly. Elsewhere it runs on a daemon thread that then waits until the process exits.
    """
    if threading.current_thread() is threading.main_thread():
        start()
        return
    import queue

    outcome: queue.Queue[BaseException | None] = queue.Queue()

    def own() -> None:
        try:
            start()
        except BaseException as exc:  # raised again on the caller's thread
            outcome.put(exc)
            return
        outcome.put(None)
        threading.Event().wait()  # the started processes' parent thread: it ends with the process

    threading.Thread(target=own, name="raysweep-ray-owner", daemon=True).start()
    error = outcome.get()
    if error is not None:
        raise error


def _check_same_cluster(ray: Any, address: str | None) -> None:
    """A sweep in a process already connected to a Ray (the caller's ``ray.init``, or the embedded
    Ray of an earlier sweep) runs on it: an ``address`` of another cluster is a ``UserError``, not
    ignored (the sweep ran on the local Ray, and its record named the address for resume)."""
    target = Target(address, "--address") if address and address not in ("auto", "local") else None
    if target is None or target.host_port is None:
        return
    connected = str(ray.get_runtime_context().gcs_address or "")
    host, _, port = connected.rpartition(":")
    wanted_host, wanted_port = target.host_port
    here = {"127.0.0.1", "localhost", "::1", _node_ip(ray)}  # this machine, by loopback or by its node IP
    if port != str(wanted_port) or not (wanted_host == host or (wanted_host in here and host in here)):
        raise UserError(
            f"{target.label}: this process is connected to the Ray at {connected} already (ray.init, or an earlier "
            "sweep's local Ray); call ray.shutdown() first to sweep on that cluster, or leave the address out to sweep on this one"
        )


def _node_ip(ray: Any) -> str:
    try:
        return str(ray.util.get_node_ip_address())
    except Exception:
        return ""


def interrupt_on_sigterm(signum: int, frame: Any) -> None:
    """A SIGTERM handler: SIGTERM (``kill``, ``timeout``, a job scheduler ending the job) stops a
    sweep as Ctrl-C does, through whatever handles SIGINT right now. During the trials that is
    Ray Tune's handler (or a nested job's, see :mod:`raysweep.sweep.nested`): the sweep's state is
    saved, its runs end KILLED and ``raysweep resume`` continues it. A second SIGTERM, like a
    second Ctrl-C, raises KeyboardInterrupt at once. The command line's ``run`` and ``resume``
    install it."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:  # SIGINT ignored or left to the system: stop anyway
        raise KeyboardInterrupt


#: how long a Ctrl-C that came during an import waits for it to end, at most (see :func:`interrupt_outside_imports`)
IMPORT_GRACE_S = 5.0
#: how often it looks again whether the import is over
_IMPORT_RETRY_S = 0.02
_deferred_since: float | None = None


def interrupt_outside_imports(signum: int, frame: Any) -> None:
    """A SIGINT handler: KeyboardInterrupt, as Python's own, but not while this thread imports.

    Python's import machinery takes its locks in plain Python code (``importlib._bootstrap``), and
    a KeyboardInterrupt raised just after it takes the global import lock, before the ``try`` that
    gives it back, leaves that lock held for good: every later import by another thread waits
    forever. A sweep's threads import beside the main one (Ray's shutdown imports ``ray.dag`` while
    the best config is refit): a Ctrl-C sent as the refit began hung the sweep at its end, 2 times
    in 30. A Ctrl-C that comes while this thread is importing is raised once the import is over
    (the signal is sent again every few milliseconds), or after :data:`IMPORT_GRACE_S` whatever
    the import does. The same for one that comes while an object's finalizer or a fork hook runs
    (Python would ignore it there). The command line's ``run`` and ``resume`` install it."""
    global _deferred_since
    now = time.monotonic()
    if (_importing(frame) or _finalizing(frame) or _in_fork_hook(frame)) and (
        _deferred_since is None or now - _deferred_since < IMPORT_GRACE_S
    ):
        if _deferred_since is None:
            _deferred_since = now
        timer = threading.Timer(_IMPORT_RETRY_S, os.kill, (os.getpid(), signum))
        timer.daemon = True
        timer.start()
        return
    _deferred_since = None
    raise KeyboardInterrupt


def _finalizing(frame: Any) -> bool:
    """Whether ``frame`` or a frame that called it is an object's finalizer (``__del__``, run by the
    garbage collector at any point): Python ignores an exception raised there ("Exception ignored
    in: <function ZipFile.__del__>"), and a SIGTERM as the model was logged was lost, the sweep
    ending as if nothing had come."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _in_fork_hook(frame: Any) -> bool:
    """Whether ``frame`` or a frame that called it is one of :mod:`logging`'s fork hooks, which run
    around every ``os.fork`` and every subprocess started with a ``preexec_fn`` (as Ray starts its
    GCS server and raylet): Python ignores an exception raised there ("Exception ignored in:
    <function _releaseLock>"), and a Ctrl-C sent as Ray started was lost, the sweep running to its
    end with exit 0."""
    hooks = _fork_hook_codes()
    while frame is not None:
        if frame.f_code in hooks:
            return True
        frame = frame.f_back
    return False


def _fork_hook_codes() -> frozenset[Any]:
    import logging

    names = ("_acquireLock", "_releaseLock", "_prepareFork", "_afterFork")  # Python 3.11-3.12, 3.13+
    return frozenset(getattr(logging, name).__code__ for name in names if hasattr(getattr(logging, name, None), "__code__"))


def _importing(frame: Any) -> bool:
    """Whether ``frame`` or a frame that called it runs Python's import machinery."""
    while frame is not None:
        if "importlib._bootstrap" in frame.f_code.co_filename or frame.f_code.co_filename.endswith(
            ("importlib/_bootstrap.py", "importlib/_bootstrap_external.py")
        ):
            return True
        frame = frame.f_back
    return False


@contextmanager
def _sigterm_kept() -> Iterator[None]:
    """Around ``ray.init``: it makes SIGTERM end the driver with ``sys.exit`` (the sweep then
    ends FAILED, its state unsaved), and the driver's core worker prints a stack dump on it.
    When SIGTERM was :func:`interrupt_on_sigterm`, it stays so while Ray starts (Ray's
    ``set_sigterm_handler`` does nothing meanwhile: a SIGTERM then ended the command with exit
    15 and not a word, where Ctrl-C says there is nothing to resume, exit 130) and is put back
    after (which drops the dump too). Any other handler is left as Ray sets it: a program that
    calls :func:`raysweep.run_sweep` keeps Ray's usual behaviour."""
    kept = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is interrupt_on_sigterm
    if kept:
        # Without its C++ failure signal handler the driver's core worker leaves SIGTERM alone as
        # it shuts down: with it, Ray's shutdown set SIGTERM back to the system's default, and a
        # SIGTERM in that moment (the shutdown runs beside the refit) ended the process at once,
        # exit 143, its runs left RUNNING (raysweep.sweep.early puts the handler back after, but
        # could not close that window). Only this process: Ray's own workers keep theirs.
        from ray._private import ray_constants

        ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True
        from ray._private import utils as ray_utils  # private API, checked on Ray 2.60

        install = ray_utils.set_sigterm_handler
        ray_utils.set_sigterm_handler = _keep_sigterm
    try:
        yield
    finally:
        if kept:
            ray_utils.set_sigterm_handler = install
            signal.signal(signal.SIGTERM, interrupt_on_sigterm)


def _keep_sigterm(handler: Any) -> None:
    """Ray's ``set_sigterm_handler`` while it starts for the command line: SIGTERM stays
    :func:`interrupt_on_sigterm`."""


@contextmanager
def _embedded_head(*, log_monitor: bool) -> Iterator[None]:
    """While ``ray.init`` starts the embedded local Ray: without the two head processes it has no
    use for.

    * The autoscaler monitor: a Ray started by ``ray.init`` has one node and nothing to scale
      (``ray start --head --no-monitor`` leaves it out the same way).
    * The log monitor, unless ``log_monitor``: it sends the workers' output to the driver, which
      reads it only with ``log_to_driver`` (``--verbose``).

    Each is a Python process that imports Ray's modules while Ray starts: 0.5 and 0.4 CPU s, on
    the same cores as the driver's start and the trials' first imports. Ray's ``init`` has no
    arguments for them; they are the ``no_monitor`` and ``include_log_monitor`` fields of the
    ``RayParams`` it builds (private API, checked on Ray 2.60). On a Ray without those fields,
    Ray starts as it does by default.
    """
    try:
        from ray._private import parameter

        original = parameter.RayParams
        fields = inspect.signature(original).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        fields = {}
    if not {"no_monitor", "include_log_monitor"} <= fields.keys():
        logger.debug("raysweep: Ray's RayParams has no no_monitor or include_log_monitor; Ray starts its own head processes")
        yield
        return

    class EmbeddedHeadParams(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.no_monitor = True
            if not log_monitor:
                self.include_log_monitor = False

    parameter.RayParams = EmbeddedHeadParams
    try:
        yield
    finally:
        parameter.RayParams = original


@contextmanager
def _own_process_group() -> Iterator[None]:
    """While ``ray.init`` starts the embedded local Ray: its processes (the GCS server and the
    raylet, which starts the workers) in a process group of their own.

    ``timeout``, a job scheduler's time limit and a shell's ``kill -- -PGID`` send SIGTERM to the
    command's whole process group. Ray's processes, in the driver's group by default, died of it at
    once: the driver's handler could not stop the sweep through Ray, Ray's client in the driver
    ended the process after 60 s ("Failed to connect to GCS within 60 seconds"), exit 1, its MLflow
    runs left RUNNING. In a group of their own they outlive the signal, and the driver stops the
    sweep as after Ctrl-C (exit 130, runs KILLED, resumable), then shuts them down. Ctrl-C's SIGINT
    never reached them (Ray blocks it in its processes). They still end with the driver if it is
    killed (Ray's fate-sharing: they get SIGKILL when their parent dies). When ``ray.init`` does
    not finish (Ctrl-C or SIGTERM as Ray starts), each group it started is killed whole.

    Ray's ``init`` has no argument for this: its processes are started by ``ConsolePopen`` of
    ``ray._private.services`` (private API, checked on Ray 2.60), here given ``process_group=0``.
    """
    try:
        from ray._private import services

        original = services.ConsolePopen
    except (ImportError, AttributeError):
        yield
        return
    if os.name != "posix" or not isinstance(original, type):
        yield
        return

    started: list[int] = []

    class OwnGroupPopen(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("process_group", 0)
            super().__init__(*args, **kwargs)
            started.append(self.pid)

    services.ConsolePopen = OwnGroupPopen
    try:
        yield
    except BaseException:
        # ``ray.init`` did not finish (Ctrl-C or SIGTERM as Ray started): the processes it started
        # are nobody's. The GCS server and the raylet die with the driver, but the raylet's agents
        # (dashboard, runtime env), in its group, lived on for a minute: each group goes now.
        for pid in started:
            with suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        raise
    finally:
        services.ConsolePopen = original


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))

