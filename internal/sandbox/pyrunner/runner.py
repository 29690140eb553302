# vizops sandbox runner. It runs inside bubblewrap as the sandbox's only long-lived
# process (the "zygote"): it imports the plotting stack once, then for every job forks
# a one-shot job process ahead of demand. Process tree per job:
#
#   zygote ── supervisor (new user/mount/pid/ipc/uts[/net] namespaces, fresh tmpfs)
#                └── job (pid 1 of its namespace, no capabilities, seccomp) runs the code
#
# The supervisor enforces the wall-clock timeout, caps stdout/stderr, collects the
# artifacts from the job's tmpfs and reports one result. When the job (pid 1) exits the
# kernel kills everything it started, and the tmpfs dies with the mount namespace, so
# nothing is left for the next job.
#
# Channels with the Go side: jobs arrive on fd 0 and results leave on fd RESULTS_FD,
# both read and written directly by the supervisor that runs the job (no relay: every
# hop costs a wakeup, which is what hurts on a loaded machine); the zygote's notices
# ({"type": "ready" | "armed" | "warm" | "fatal" | "lost"}) leave on fd 1. Frames are a
# 4-byte big-endian length followed by JSON. Only one supervisor exists at a time, so
# the job and result channels never have two users.

import base64
import ctypes
import errno
import io
import json
import os
import select
import signal
import stat
import struct
import sys
import time
import traceback

CONFIG = json.loads(sys.argv[1])
# The Local backend's jobs use the sandbox's fresh tmpfs; the agent's kernels may be
# given their own directories (kernel.py).
WORK = CONFIG.get("work_dir") or "/tmp/work"
FIGDIR = CONFIG.get("fig_dir") or "/tmp/.vizops/figures"
OUTPUT_DIR = WORK + "/outputs"

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWCGROUP = 0x02000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS = 1, 4, 22, 38


def die_errno(what):
    e = ctypes.get_errno()
    raise OSError(e, "%s: %s" % (what, os.strerror(e)))


def prctl(option, arg):
    if libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        die_errno("prctl(%d)" % option)


# ---- framing ---------------------------------------------------------------


def read_exact(fd, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError("peer closed")
        buf += chunk
    return bytes(buf)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def send_frame(fd, obj):
    data = json.dumps(obj).encode()
    write_all(fd, struct.pack(">I", len(data)) + data)


def read_frame_raw(fd, limit=1 << 30):
    (n,) = struct.unpack(">I", read_exact(fd, 4))
    if n > limit:
        raise ValueError("frame of %d bytes exceeds %d" % (n, limit))
    return read_exact(fd, n)


def keep_fds(keep):
    # A child must hold only the fds it needs: a job that could reach the zygote's
    # control channel could forge results or read other jobs' inputs.
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


# ---- hardening ---------------------------------------------------------------


PR_CAPBSET_READ, PR_CAPBSET_DROP, PR_CAP_AMBIENT = 23, 24, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4


def drop_capabilities():
    # Order matters: PR_CAPBSET_DROP needs CAP_SETPCAP, which capset below clears. So
    # the bounding set goes first, then ambient, then the three sets; every call is
    # checked and the result verified, so a failure stops the job instead of running it
    # with capabilities it could regain through exec.
    cap = 0
    while True:
        if libc.prctl(PR_CAPBSET_READ, ctypes.c_ulong(cap), 0, 0, 0) < 0:
            if ctypes.get_errno() == errno.EINVAL and cap > 0:
                break  # past the kernel's last capability
            die_errno("prctl(PR_CAPBSET_READ, %d)" % cap)
        if libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0:
            die_errno("prctl(PR_CAPBSET_DROP, %d)" % cap)
        cap += 1
    last = cap
    if libc.prctl(PR_CAP_AMBIENT, ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL), 0, 0, 0) != 0:
        die_errno("prctl(PR_CAP_AMBIENT_CLEAR_ALL)")

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    hdr = Header(0x20080522, 0)
    data = (Data * 2)()
    if libc.capset(ctypes.byref(hdr), ctypes.byref(data)) != 0:
        die_errno("capset")
    # Verify: nothing left in the bounding set or the three sets.
    for c in range(last):
        if libc.prctl(PR_CAPBSET_READ, ctypes.c_ulong(c), 0, 0, 0) != 0:
            raise OSError(errno.EPERM, "capability %d is still in the bounding set" % c)
    got = (Data * 2)()
    if libc.capget(ctypes.byref(hdr), ctypes.byref(got)) != 0:
        die_errno("capget")
    if any(d.effective or d.permitted or d.inheritable for d in got):
        raise OSError(errno.EPERM, "capabilities remain after capset")


# Syscalls the job never needs and that widen the kernel attack surface or reach other
# processes (ptrace, process_vm_*, namespaces, mounts, keyrings, bpf...), per
# architecture: (AUDIT_ARCH, numbers, clone, clone3, socket, socketpair).
SECCOMP_ARCHES = {
    "x86_64": (0xC000003E, [
        101, 310, 311, 312, 438,  # ptrace, process_vm_readv/writev, kcmp, pidfd_getfd
        165, 166, 155, 161, 272, 308,  # mount, umount2, pivot_root, chroot, unshare, setns
        428, 429, 430, 431, 432, 433, 442,  # new mount API
        246, 320, 175, 313, 176,  # kexec, modules
        321, 298, 323,  # bpf, perf_event_open, userfaultfd
        248, 249, 250,  # add_key, request_key, keyctl
        425, 426, 427,  # io_uring
        303, 304, 163, 167, 168, 169, 103, 179, 153,  # handles, acct, swap, reboot, syslog, quotactl, vhangup
        159, 164, 227, 305, 172, 173, 134, 139, 135,  # clocks, iopl/ioperm, uselib, sysfs, personality
    ], 56, 435, 41, 53),
    # The generic syscall table (asm-generic/unistd.h); arm64 has no iopl, ioperm,
    # uselib or sysfs.
    "aarch64": (0xC00000B7, [
        117, 270, 271, 272, 438,  # ptrace, process_vm_readv/writev, kcmp, pidfd_getfd
        40, 39, 41, 51, 97, 268,  # mount, umount2, pivot_root, chroot, unshare, setns
        428, 429, 430, 431, 432, 433, 442,  # new mount API
        104, 294, 105, 106, 273,  # kexec_load, kexec_file_load, init/delete/finit_module
        280, 241, 282,  # bpf, perf_event_open, userfaultfd
        217, 218, 219,  # add_key, request_key, keyctl
        425, 426, 427,  # io_uring
        264, 265, 89, 224, 225, 142, 116, 60, 58,  # handles, acct, swap, reboot, syslog, quotactl, vhangup
        171, 170, 112, 266, 92,  # adjtimex, settimeofday, clock_settime, clock_adjtime, personality
    ], 220, 435, 198, 199),
}
SECCOMP_ARCHES["arm64"] = SECCOMP_ARCHES["aarch64"]
NS_FLAGS = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP
AF_UNIX, AF_INET, AF_NETLINK, AF_INET6 = 1, 2, 16, 10


def seccomp_program(machine, network):
    """The BPF program for machine; None when vizops has no filter for it."""
    if machine not in SECCOMP_ARCHES:
        return None
    audit_arch, blocked, nr_clone, nr_clone3, nr_socket, nr_socketpair = SECCOMP_ARCHES[machine]
    ld_abs, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06
    allow, kill = 0x7FFF0000, 0x80000000
    eperm, enosys = 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
    eafnosupport = 0x00050000 | errno.EAFNOSUPPORT
    prog = [
        (ld_abs, 0, 0, 4),  # arch
        (jeq, 1, 0, audit_arch),
        (ret, 0, 0, kill),
        (ld_abs, 0, 0, 0),  # syscall nr
    ]
    if machine == "x86_64":
        prog += [
            (0x35, 0, 1, 0x40000000),  # jge: x32 ABI -> kill
            (ret, 0, 0, kill),
        ]
    prog += [
        (jeq, 0, 1, nr_clone3),  # clone3 -> ENOSYS so libc falls back to clone, whose flags we can see
        (ret, 0, 0, enosys),
    ]
    for nr in blocked:
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, eperm)]
    # socket and socketpair: only the families the network mode needs. With no network
    # that is AF_UNIX alone (no AF_VSOCK to the host, no AF_PACKET, no AF_NETLINK).
    families = [AF_UNIX] if not network else [AF_UNIX, AF_INET, AF_INET6, AF_NETLINK]
    for nr in (nr_socket, nr_socketpair):
        # nr matches: load args[0] (the family); allowed families jump to allow.
        # Other syscalls skip the block with the accumulator still holding the number.
        body = [(ld_abs, 0, 0, 16)]
        for i, fam in enumerate(families):
            body.append((jeq, len(families) - i, 0, fam))  # to the "ret allow" below
        body += [(ret, 0, 0, eafnosupport), (ret, 0, 0, allow)]
        prog.append((jeq, 0, len(body), nr))
        prog += body
    prog += [
        (jeq, 0, 3, nr_clone),  # clone: refuse new namespaces
        (ld_abs, 0, 0, 16),  # args[0] low 32 bits
        (jset, 0, 1, NS_FLAGS),
        (ret, 0, 0, eperm),
        (ret, 0, 0, allow),
    ]
    return prog


def install_seccomp():
    import platform

    machine = CONFIG.get("seccomp_arch") or platform.machine()
    prog = seccomp_program(machine, CONFIG.get("network"))
    if prog is None:
        # Fail closed: a job never runs without the filter.
        raise OSError(errno.ENOSYS, "vizops has no seccomp filter for the %s architecture (supported: %s); "
                      "refusing to run code without one" % (machine, ", ".join(sorted(SECCOMP_ARCHES))))
    raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw)

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = Fprog(len(prog), ctypes.addressof(buf))
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    if libc.prctl(PR_SET_SECCOMP, 2, ctypes.byref(fprog), 0, 0) != 0:
        die_errno("seccomp")
    return True


# ---- plotting stack (imported once, in the zygote) -----------------------------


def seed_mpl_cache():
    # The host prebuilt matplotlib's font cache; without a copy in the writable
    # MPLCONFIGDIR every sandbox would spend seconds rebuilding it.
    src, dst = "/opt/vizops/mplcache", os.environ.get("MPLCONFIGDIR")
    if not dst or not os.path.isdir(src):
        return
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        try:
            with open(os.path.join(src, name), "rb") as fin, open(os.path.join(dst, name), "wb") as fout:
                fout.write(fin.read())
        except OSError:
            pass


seed_mpl_cache()

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy  # noqa: E402,F401
import threading  # noqa: E402

# The rest of the stack (pandas, seaborn, plotly: most of the import time) loads in a
# background thread after the sandbox reports ready, so a new sandbox's first job does
# not wait for it. Job processes forked before it finished import what they use.
pandas = plotly = None
FULLY_WARM = False


def import_pandas():
    global pandas
    import pandas as _pandas

    pandas = _pandas


def import_plotly():
    global plotly
    import plotly as _plotly
    import plotly.basedatatypes
    import plotly.graph_objects  # noqa: F401
    import plotly.express  # noqa: F401
    import plotly.io
    import plotly.offline

    plotly = _plotly
    plotly.basedatatypes.BaseFigure.show = capture_plotly
    plotly.io.show = capture_plotly
    plotly.offline.iplot = capture_plotly


def import_rest():
    import_pandas()
    import seaborn  # noqa: F401

    import_plotly()


class Capture:
    """Per-job figure capture state (only ever used inside a job process)."""

    formats = ["png"]
    ready_sent = False
    # after, when set (kernel.py), is called after every capture so figures stream out
    # as they are shown.
    after = None
    count = 0
    plotly_count = 0
    charts = []  # chart data read back from each captured figure (chartdata.py)


def plotly_js_setting():
    want = CONFIG.get("plotly_js") or ""
    if want == "inline":
        return True
    if want:
        return want
    return "https://cdn.plot.ly/plotly-%s.min.js" % plotly.offline.get_plotlyjs_version()


def figure_is_blank(fig):
    if fig.texts or fig.images or fig.legends or fig.patches or fig.lines:
        return False
    for ax in fig.axes:
        if ax.has_data() or ax.texts or ax.tables or ax.images:
            return False
    return True


def save_figure(fig):
    if figure_is_blank(fig):
        return
    Capture.count += 1
    for fmt in Capture.formats:
        if fmt not in ("png", "svg"):
            continue
        path = "%s/%03d_figure_%d.%s" % (FIGDIR, Capture.count, Capture.count, fmt)
        try:
            fig.savefig(path, format=fmt)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise
            print("vizops: could not save figure %d as %s: %s" % (Capture.count, fmt, e), file=sys.stderr)
    record_charts(chart_data_of_figure(fig), "figure_%d" % Capture.count)


def capture_open_figures():
    for num in plt.get_fignums():
        save_figure(plt.figure(num))
    plt.close("all")


def capture_plotly(fig, *args, **kwargs):
    Capture.plotly_count += 1
    n = Capture.plotly_count
    if not isinstance(fig, plotly.basedatatypes.BaseFigure):
        fig = plotly.graph_objects.Figure(fig)
    base = "%s/%03d_plotly_%d" % (FIGDIR, 500 + n, n)
    js = plotly.io.to_json(fig)
    with open(base + ".json", "w") as f:
        f.write(js)
    record_charts([chart_data_of_plotly(json.loads(js))], "plotly_%d" % n)
    with open(base + ".html", "w") as f:
        f.write(plotly.io.to_html(fig, include_plotlyjs=plotly_js_setting(), full_html=True))
    if Capture.after is not None:
        Capture.after()


# ---- chart data (the extraction itself is chartdata.py, prepended to this script) ----


def record_charts(charts, figure):
    """Keeps the chart data of one captured figure for the job's report (bounded)."""
    for c in charts:
        if c is not None and len(Capture.charts) < CHART_MAX_CHARTS:
            c["figure"] = figure
            Capture.charts.append(chart_data_json_safe(c))


def show(*args, **kwargs):
    capture_open_figures()
    if Capture.after is not None:
        Capture.after()


plt.show = show
matplotlib.pyplot.show = show


def warm_up():
    # Rendering once makes the renderer, fonts and savefig paths hot in this process;
    # a freshly forked child that skips this renders ~3x slower the first time.
    fig = plt.figure()
    plt.bar(["a", "b", "c"], [1, 2, 3])
    plt.ylabel("y")
    plt.title("warm-up")
    fig.savefig(io.BytesIO(), format="png")
    plt.close("all")


# ---- the job process ------------------------------------------------------------


class JobTimeout(BaseException):
    pass


def on_alarm(signum, frame):
    raise JobTimeout()


class CPUTimeExceeded(BaseException):
    """The job (or a kernel's execution) used its RLIMIT_CPU: SIGXCPU, handled."""


def on_sigxcpu(signum, frame):
    raise CPUTimeExceeded()


# Caps on an error's parts: str(exc) and a traceback are the job's to choose, and an
# uncapped one would overflow the report (a 6 MB message once turned a failure into a
# success).
MAX_ERROR_NAME = 256
MAX_ERROR_VALUE = 16 << 10
MAX_TRACEBACK = 64 << 10


def format_error(exc):
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "<cell>":
        tb = tb.tb_next
    try:
        value = str(exc)
    except BaseException as e:  # a hostile __str__
        if isinstance(e, JobTimeout):
            raise
        value = "<str() of the exception failed: %s>" % type(e).__name__
    try:
        lines = traceback.format_exception(type(exc), exc, tb, limit=64)
        text = "".join(lines)
    except BaseException as e:
        if isinstance(e, JobTimeout):
            raise
        text = "<traceback unavailable>"
    return {"name": cap_text(type(exc).__name__, MAX_ERROR_NAME), "value": cap_text(value, MAX_ERROR_VALUE),
            "traceback": cap_text(text, MAX_TRACEBACK)}


def cell_traceback(exc):
    """The traceback of exc from the code's own frames on (the runner's are not the
    user's), capped: for the errors the runner names itself (Timeout, CPU time)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "<cell>":
        tb = tb.tb_next
    return cap_text("".join(traceback.format_tb(tb)), MAX_TRACEBACK)


def cap_text(s, limit):
    if len(s) <= limit:
        return s
    return s[:limit] + "\u2026 [truncated: %d bytes omitted]" % (len(s) - limit)


def is_matplotlib_value(value):
    # plt.plot() and friends return artists; their repr is noise next to the figure.
    items = value if isinstance(value, (list, tuple)) and value else [value]
    return all(type(v).__module__.startswith("matplotlib") for v in items)


def run_job(job, meta_w):
    import ast
    import builtins
    import linecache

    main_pid = os.getpid()
    Capture.formats = job.get("formats") or ["png"]
    code = job["code"]
    timeout = max(float(job.get("timeout_ms", 30000)) / 1000.0, 0.05)
    scope = {"__name__": "__main__", "__builtins__": builtins, "OUTPUT_DIR": OUTPUT_DIR}
    meta = {"success": False, "text": "", "error": None}
    signal.signal(signal.SIGALRM, on_alarm)
    # Handled, so the job (PID 1 of its namespace, which ignores a signal it does not
    # handle) reports its RLIMIT_CPU instead of running on to the hard limit's SIGKILL.
    signal.signal(signal.SIGXCPU, on_sigxcpu)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        try:
            # A job forked before the zygote finished importing loads what it needs.
            # plotly's show() must be patched before the code runs, so look for it.
            if plotly is None and "plotly" in code:
                import_plotly()
            if os.path.exists(WORK + "/data.csv"):
                if pandas is None:
                    import_pandas()
                scope["DATA_PATH"] = WORK + "/data.csv"
                scope["df"] = pandas.read_csv(WORK + "/data.csv")
            linecache.cache["<cell>"] = (len(code), None, code.splitlines(True), "<cell>")
            tree = ast.parse(code, "<cell>")
            last = None
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = ast.Expression(tree.body.pop().value)
            exec(compile(tree, "<cell>", "exec"), scope)
            if last is not None:
                value = eval(compile(last, "<cell>", "eval"), scope)
                if plotly is not None and isinstance(value, plotly.basedatatypes.BaseFigure):
                    capture_plotly(value)
                elif value is not None and not is_matplotlib_value(value):
                    meta["text"] = cap_text(repr(value), CONFIG["max_output_bytes"])
            meta["success"] = True
        except SystemExit as e:
            meta["success"] = e.code in (None, 0)
            if not meta["success"]:
                meta["error"] = format_error(e)
        except JobTimeout as e:
            meta["error"] = {"name": "Timeout", "value": "", "traceback": cell_traceback(e)}
            meta["timed_out"] = True
        except CPUTimeExceeded as e:
            # The hard limit (a second more) is what is left to capture and report in.
            import resource

            _, hard = resource.getrlimit(resource.RLIMIT_CPU)
            resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
            meta["error"] = {"name": "CPUTimeLimitExceeded", "traceback": cell_traceback(e),
                             "value": "the code used more CPU time than allowed for a %gs timeout (twice the timeout plus 2s) and was "
                                      "stopped. Do less work, with fewer threads, or raise the timeout." % timeout}
        except BaseException as e:  # the user's code may raise anything
            meta["error"] = format_error(e)
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG):
                meta["scratch_full"] = True
            if isinstance(e, MemoryError):
                meta["memory_error"] = True
            if isinstance(e, BlockingIOError) or (isinstance(e, OSError) and e.errno == errno.EAGAIN):
                meta["pids_exhausted"] = True
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if os.getpid() != main_pid:
            os._exit(1)  # a forked child of the user's code must not report
        try:
            capture_open_figures()
        except BaseException as e:
            if meta["error"] is None:
                meta["success"] = False
                meta["error"] = format_error(e)
            if isinstance(e, OSError) and e.errno == errno.ENOSPC:
                meta["scratch_full"] = True
    except JobTimeout:
        meta["error"] = {"name": "Timeout", "value": "", "traceback": ""}
        meta["timed_out"] = True
    if os.getpid() != main_pid:
        os._exit(1)
    meta["charts"] = Capture.charts
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    data = encode_report(meta)
    write_all(meta_w, struct.pack(">I", len(data)) + data)
    os._exit(0)


def report_limit():
    """The most bytes the supervisor reads of a job's report."""
    return 4 * CONFIG["max_output_bytes"] + (1 << 20)


def encode_report(meta):
    # The caps above count characters; JSON escapes can make one character 12 bytes.
    # Shrink until the report fits what the supervisor reads, so a report is never lost.
    limit = report_limit() - 4
    data = json.dumps(meta).encode()
    for div in (4, 64, 1024):
        if len(data) <= limit:
            return data
        budget = limit // div
        meta["text"] = cap_text(meta.get("text") or "", budget // 12)
        if meta.get("error"):
            for k in ("value", "traceback"):
                meta["error"][k] = cap_text(meta["error"].get(k) or "", budget // 24)
        data = json.dumps(meta).encode()
    return data


def job_main(go_r, ready_w, meta_w, out_w, err_w):
    """pid 1 of the job's namespaces: finish isolation, warm up, run one job."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # A /proc of our own pid namespace: the job sees only its own processes.
    if libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) != 0:
        if libc.mount(b"tmpfs", b"/proc", b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, b"size=4k,mode=555") != 0:
            die_errno("hide /proc")
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")  # under memory pressure the job dies, not the zygote
    except OSError:
        pass
    import resource

    limits = CONFIG["limits"]
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"], limits["file_bytes"]))
    if not CONFIG.get("cgroup"):
        # No cgroup could be made: rlimits are the fallback. RLIMIT_AS counts address
        # space, so the budget is added on top of what the warm interpreter maps.
        with open("/proc/self/statm") as f:
            vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (vm + limits["memory_bytes"],) * 2)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["pids"],) * 2)
    os.chdir(WORK)
    drop_capabilities()
    install_seccomp()
    prctl(PR_SET_DUMPABLE, 0)
    if FULLY_WARM:
        warm_up()
    os.write(ready_w, b"R")
    Capture.ready_sent = True
    os.close(ready_w)
    job = json.loads(read_frame_raw(go_r, 1 << 20))
    os.close(go_r)
    # sandbox.CPUTimeLimit(timeout), as the agent gives its kernels' executions.
    cpu = int(job.get("timeout_ms", 30000) / 1000 * 2) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.close(out_w)
    os.close(err_w)
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    run_job(job, meta_w)


# ---- the supervisor -----------------------------------------------------------------


class Stream:
    def __init__(self, fd, cap):
        self.fd, self.cap, self.buf, self.dropped = fd, cap, bytearray(), 0

    def drain(self):
        try:
            while True:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    return False
                room = self.cap - len(self.buf)
                if room > 0:
                    self.buf += chunk[:room]
                self.dropped += max(0, len(chunk) - max(room, 0))
        except BlockingIOError:
            return True

    def text(self):
        s = self.buf.decode("utf-8", "replace")
        if self.dropped:
            s += "\u2026 [truncated: %d bytes omitted]" % self.dropped
        return s


MIME = {
    "png": "image/png", "svg": "image/svg+xml", "html": "text/html", "json": "application/json",
    "csv": "text/csv", "txt": "text/plain", "pdf": "application/pdf", "jpg": "image/jpeg",
    "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp", "md": "text/markdown",
}


def read_regular(path, limit):
    # Never follow links or open FIFOs the job may have planted.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None, st.st_size
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1), st.st_size
    finally:
        os.close(fd)


def frame_complete(buf):
    return len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", bytes(buf[:4]))[0]


# Bounds on collecting outputs: the job controls the tree, so the walk is iterative
# (no recursion to exhaust), stops after MAX_WALK_ENTRIES directory entries or at
# MAX_WALK_DEPTH, and names at most MAX_OMITTED_NAMES of the files it could not keep.
MAX_WALK_ENTRIES = 20000
MAX_WALK_DEPTH = 16
MAX_OMITTED_NAMES = 20


def walk_outputs(root, inputs, budget, deadline):
    """Yields (path, relative name) of the regular-looking files under root, sorted per
    directory, skipping hidden names and inputs. budget is a one-item list of entries
    left; notes collects why the walk stopped early."""
    stack = [(root, "", 0)]
    notes = []
    found = []

    def note(msg):
        if msg not in notes:
            notes.append(msg)

    while stack:
        path, rel, depth = stack.pop()
        if budget[0] <= 0:
            note("more than %d files and directories" % MAX_WALK_ENTRIES)
            break
        if time.monotonic() > deadline:
            note("the job's time limit was reached while collecting")
            break
        try:
            with os.scandir(path) as it:
                entries = []
                for e in it:
                    budget[0] -= 1
                    if budget[0] < 0:
                        break
                    entries.append(e)
        except OSError:
            continue
        subdirs = []
        for e in sorted(entries, key=lambda e: e.name):
            if e.name.startswith("."):
                continue
            name = rel + "/" + e.name if rel else e.name
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                if depth + 1 >= MAX_WALK_DEPTH:
                    note("directories nested deeper than %d" % MAX_WALK_DEPTH)
                    continue
                subdirs.append((e.path, name, depth + 1))
            elif name not in inputs:
                found.append((e.path, name))
        stack.extend(reversed(subdirs))
    if budget[0] < 0:
        note("more than %d files and directories" % MAX_WALK_ENTRIES)
    return found, notes


def collect_artifacts(inputs, result, deadline):
    budget = [MAX_WALK_ENTRIES]
    figs, notes = walk_outputs(FIGDIR, set(), budget, deadline)
    found = []
    for path, name in figs:
        if "/" in name:
            continue
        mime = "application/vnd.plotly.v1+json" if "_plotly_" in name and name.endswith(".json") else None
        found.append((path, name.split("_", 1)[1] if "_" in name else name, mime, True))
    outs, more = walk_outputs(WORK, inputs, budget, deadline)
    notes += [n for n in more if n not in notes]
    found += [(path, name, None, False) for path, name in outs]
    max_n, max_bytes = CONFIG["max_artifacts"], CONFIG["max_artifact_bytes"]
    total, files, omitted, n_omitted = 0, [], [], 0

    def omit(name, size):
        nonlocal n_omitted
        n_omitted += 1
        if len(omitted) < MAX_OMITTED_NAMES:
            omitted.append("%s (%d bytes)" % (cap_text(name, 200), size))

    for path, name, mime, figure in found:
        if time.monotonic() > deadline:
            if "the job's time limit was reached while collecting" not in notes:
                notes.append("the job's time limit was reached while collecting")
            break
        try:
            lst = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(lst.st_mode):
            continue
        if len(files) >= max_n or total + lst.st_size > max_bytes:
            omit(name, lst.st_size)
            continue
        try:
            data, size = read_regular(path, max_bytes - total)
        except OSError:
            continue
        if data is None or len(data) > max_bytes - total:
            omit(name, size)
            continue
        total += len(data)
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        files.append({"name": name, "mime": mime or MIME.get(ext, "application/octet-stream"),
                      "data": base64.b64encode(data).decode(), "figure": figure})
    if n_omitted > len(omitted):
        omitted.append("and %d more" % (n_omitted - len(omitted)))
    result["files"] = files
    result["omitted"] = omitted
    result["collect_notes"] = notes


def setup_namespaces():
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if not CONFIG.get("network"):
        flags |= CLONE_NEWNET
    if libc.unshare(flags) != 0:
        die_errno("unshare (nested user namespaces must be allowed)")
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write("%d %d 1" % (uid, uid))
    with open("/proc/self/gid_map", "w") as f:
        f.write("%d %d 1" % (gid, gid))
    opts = ("size=%d,mode=0755" % CONFIG["limits"]["scratch_bytes"]).encode()
    if libc.mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, opts) != 0:
        die_errno("mount scratch tmpfs")
    for d in (WORK, OUTPUT_DIR, FIGDIR, "/tmp/.mpl", "/tmp/.cache"):
        os.makedirs(d, exist_ok=True)


def supervisor(job_in, result_out, res_w, retire_r):
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        setup_namespaces()
        prctl(PR_SET_DUMPABLE, 0)  # after the id maps: they need our own /proc files
        go_r, go_w = os.pipe()
        ready_r, ready_w = os.pipe()
        meta_r, meta_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                keep_fds({go_r, ready_w, meta_w, out_w, err_w})
                job_main(go_r, ready_w, meta_w, out_w, err_w)
            except BaseException as e:
                traceback.print_exc()
                if not Capture.ready_sent:  # say why, so the operator's error does
                    try:
                        os.write(ready_w, ("E%s" % e).encode()[:4000])
                    except OSError:
                        pass
            os._exit(70)
        for fd in (go_r, ready_w, meta_w, out_w, err_w):
            os.close(fd)
        got = os.read(ready_r, 4096)
        if got != b"R":
            _, status = os.waitpid(pid, 0)
            why = got[1:].decode("utf-8", "replace") if got.startswith(b"E") else "status %d" % status
            raise RuntimeError("job process failed to start: %s" % why)
        os.close(ready_r)
    except BaseException as e:
        write_all(res_w, b"E")
        send_frame(res_w, {"type": "fatal", "message": "sandbox job setup failed: %s" % e})
        os._exit(1)
    write_all(res_w, b"R")

    # Wait for a job, unless the zygote retires us first (to replace a job process
    # forked before its imports finished). A job already waiting wins.
    readable, _, _ = select.select([job_in, retire_r], [], [])
    if job_in not in readable:
        os.kill(pid, signal.SIGKILL)
        os._exit(0)
    try:
        job = json.loads(read_frame_raw(job_in))
    except EOFError:
        os.kill(pid, signal.SIGKILL)
        os._exit(0)
    write_all(res_w, b"J")
    start = time.monotonic()
    inputs = set()
    for f in job.get("files") or []:
        name = f["name"]
        if "/" in name or name in ("", ".", "..") or name.startswith("."):
            continue  # validated by the Go side too; never write outside the work dir
        with open(os.path.join(WORK, name), "wb") as out:
            out.write(base64.b64decode(f["data"]))
        inputs.add(name)
    timeout = max(float(job.get("timeout_ms", 30000)) / 1000.0, 0.05)
    send_frame(go_w, {"code": job["code"], "formats": job.get("formats"), "timeout_ms": job.get("timeout_ms", 30000)})
    os.close(go_w)

    cap = CONFIG["max_output_bytes"]
    streams = [Stream(out_r, cap), Stream(err_r, cap), Stream(meta_r, report_limit())]
    for s in streams:
        os.set_blocking(s.fd, False)
    pidfd = os.pidfd_open(pid)
    # The job handles SIGALRM itself at the timeout; this hard deadline is for code
    # that blocks or swallows it.
    deadline = start + timeout + CONFIG.get("grace_seconds", 2.0)
    killed_for_timeout = False
    status = None
    meta_stream = streams[2]
    open_fds = {s.fd: s for s in streams}
    # The job is done when its length-prefixed report is complete: no need to wait for
    # the namespace teardown that follows its exit (that overlaps the reply instead).
    while status is None and not frame_complete(meta_stream.buf):
        left = deadline - time.monotonic()
        if left <= 0 and not killed_for_timeout:
            os.kill(pid, signal.SIGKILL)
            killed_for_timeout = True
        ready, _, _ = select.select(list(open_fds) + [pidfd], [], [], max(left, 0) if not killed_for_timeout else 1.0)
        for fd in ready:
            if fd == pidfd:
                _, status = os.waitpid(pid, 0)
            elif not open_fds[fd].drain():
                del open_fds[fd]
    if status is None:
        os.kill(pid, signal.SIGKILL)  # pid 1: whatever the job left running dies with it
    for s in streams:
        s.drain()
    elapsed = time.monotonic() - start

    result = {"type": "result", "stdout": streams[0].text(), "stderr": streams[1].text(),
              "exec_us": int(elapsed * 1e6), "success": False, "text": "", "error": None}
    meta = None
    if frame_complete(meta_stream.buf) and not meta_stream.dropped:
        try:
            meta = json.loads(bytes(meta_stream.buf[4:]))
        except ValueError:
            meta = None
    # The job began a report that did not arrive whole: that is a failure, never a
    # success by default.
    report_dropped = meta is None and (bool(meta_stream.buf) or meta_stream.dropped > 0)
    if isinstance(meta, dict):
        for k in ("success", "text", "error", "timed_out", "scratch_full", "memory_error", "pids_exhausted", "charts"):
            if k in meta:
                result[k] = meta[k]
    if killed_for_timeout:
        result["timed_out"] = True
        result["success"] = False
    elif meta is None and status is not None and os.WIFEXITED(status):
        # The code ended the interpreter itself (os._exit), whatever it wrote to look
        # like a report: never a success. The agent's kernels name it the same.
        result["success"] = False
        result["exit_code"] = os.WEXITSTATUS(status)
        result["error"] = {"name": "ProcessExited", "traceback": "",
                           "value": "the code ended its interpreter with exit status %d before the job finished, so the job "
                                    "has no result. Let the code end normally (sys.exit() is fine; os._exit() is not)."
                                    % os.WEXITSTATUS(status)}
    elif report_dropped:
        result["success"] = False
        result["error"] = {"name": "OutputLimitExceeded", "traceback": "",
                           "value": "the job's report (%d bytes or more) did not fit the %d bytes the sandbox reads, so "
                                    "its outcome is unknown. Print less, or raise shorter exceptions."
                                    % (len(meta_stream.buf) + meta_stream.dropped, meta_stream.cap)}
    elif meta is None and status is not None:
        result["success"] = False
        if os.WIFSIGNALED(status):
            result["signal"] = os.WTERMSIG(status)
        else:
            result["exit_code"] = os.WEXITSTATUS(status)
    # Collection shares the job's deadline: a tree built to be slow to walk cannot
    # stretch the job past its time limit.
    collect_artifacts(inputs, result, max(deadline, time.monotonic() + 1.0))
    send_frame(result_out, result)
    if status is None:
        # Returns once every process of the job's pid namespace is gone; the zygote
        # forks the next job only after reaping us, so jobs never overlap.
        os.waitpid(pid, 0)
    os._exit(0)


# ---- the zygote ------------------------------------------------------------------------


class Prefork:
    def __init__(self, pid, res_r, retire_w):
        self.pid, self.res_r, self.retire_w = pid, res_r, retire_w
        self.ready = self.busy = False


def spawn(job_in, result_out):
    # Frozen objects are skipped by the collector, so the child's garbage collections
    # do not touch (and copy) every page it shares with the zygote.
    import gc

    gc.collect()
    gc.freeze()
    res_r, res_w = os.pipe()
    retire_r, retire_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            keep_fds({job_in, result_out, res_w, retire_r})
            supervisor(job_in, result_out, res_w, retire_r)
        except BaseException:
            traceback.print_exc()
        os._exit(70)
    os.close(res_w)
    os.close(retire_r)
    return Prefork(pid, res_r, retire_w)


def reap(p):
    for fd in (p.res_r, p.retire_w):
        try:
            os.close(fd)
        except OSError:
            pass
    try:
        _, status = os.waitpid(p.pid, 0)
        return status
    except ChildProcessError:
        return 0


class Importer:
    """Finishes the imports in a low-priority thread; notifies through a pipe."""

    def __init__(self):
        self.done_r, self.done_w = os.pipe()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        global FULLY_WARM
        try:
            # Nice only this thread: a running job keeps the CPU it needs.
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            import_rest()
            warm_up()
            FULLY_WARM = True
        except BaseException:
            traceback.print_exc()
        os.write(self.done_w, b"1")

    def finish(self):
        """Joins the thread: forking while it imports would copy a held import lock."""
        if self.thread is not None:
            self.thread.join()
            self.thread = None
            os.close(self.done_r)
            os.close(self.done_w)


def setup_failure(p):
    try:
        return json.loads(read_frame_raw(p.res_r))["message"]
    except Exception:
        return "sandbox job setup failed"


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    job_in, notices = os.dup(0), os.dup(1)
    result_out = os.dup(CONFIG["results_fd"])
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)  # stray prints from libraries go to the log, not the protocol
    os.close(null)
    keep_fds({job_in, notices, result_out})
    nxt = spawn(job_in, result_out)
    if os.read(nxt.res_r, 1) != b"R":
        send_frame(notices, {"type": "fatal", "message": setup_failure(nxt)})
        return
    nxt.ready = True
    importer = Importer()
    jobs_taken = crashes = 0
    send_frame(notices, {"type": "ready"})
    while True:
        waits = [nxt.res_r]
        if importer.thread is not None:
            waits.append(importer.done_r)
        readable, _, _ = select.select(waits, [], [])
        if importer.thread is not None and importer.done_r in readable:
            importer.finish()
            send_frame(notices, {"type": "warm"})
            if not nxt.busy:
                os.write(nxt.retire_w, b"1")  # forked cold: replace it with a warm one
        if nxt.res_r not in readable:
            continue
        mark = os.read(nxt.res_r, 1)
        if mark == b"R":
            nxt.ready = True
            send_frame(notices, {"type": "armed", "jobs": jobs_taken})
            continue
        if mark == b"J":
            nxt.busy = True
            jobs_taken += 1
            continue
        if mark == b"E":
            send_frame(notices, {"type": "fatal", "message": setup_failure(nxt)})
            return
        # The supervisor exited: after its job, or retired, or crashed.
        status = reap(nxt)
        if nxt.busy and status != 0:
            send_frame(notices, {"type": "lost", "message": "job supervisor failed (status %d)" % status})
        crashes = crashes + 1 if status != 0 and not nxt.busy else 0
        if crashes >= 3:
            # Job processes die before they are ready: stop rather than fork forever.
            send_frame(notices, {"type": "fatal", "message": "job processes keep dying before ready (status %d)" % status})
            return
        importer.finish()
        nxt = spawn(job_in, result_out)  # ahead of demand: warms while the caller handles the result


if __name__ == "__main__" and not CONFIG.get("kernel"):
    main()
