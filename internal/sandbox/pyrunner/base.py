# vizops sandbox kernel, part one: what every kernel is built on. chartdata.py comes
# before this file and kernel.py after it (pyrunner.KernelSource); the sandbox-agent
# runs the result as each context's interpreter, or as the kernel zygote that forks
# them (Options.ForkKernels: the Local backend's sandboxes, and Pods that ask for it).
# Here: the configuration (argv[1], pyrunner.Config), framing, the hardening (dropped
# capabilities, the seccomp filter), the plotting stack imported once, the figure
# capture (plt.show, open figures, plotly) and the error formatting. kernel.py holds the
# kernel's loop, its limits and its namespaces.

import base64
import ctypes
import errno
import io
import json
import os
import select
import signal
import struct
import sys
import traceback

CONFIG = json.loads(sys.argv[1])
# The agent gives each kernel its own directories (kernel.py); these are the defaults.
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


def read_frame_raw(fd, limit=1 << 30):
    (n,) = struct.unpack(">I", read_exact(fd, 4))
    if n > limit:
        raise ValueError("frame of %d bytes exceeds %d" % (n, limit))
    return read_exact(fd, n)


def keep_fds(keep):
    # A child must hold only the fds it needs: code that could reach the kernel
    # zygote's control channel, or another kernel's pipes, could forge their messages.
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
    # checked and the result verified, so a failure stops the kernel instead of running code
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


# Syscalls the code never needs and that widen the kernel attack surface or reach other
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


# ---- plotting stack (imported once, before the kernels are forked) ---------------


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


def skip_uname_subprocess():
    """Debian's pandas reads platform.uname()[4] on import, and platform fills in the
    tuple's processor field by running `uname -p` in a subprocess: a fork of the whole
    interpreter and an exec, 10 to 25 ms, in the process that imports pandas first (a
    new sandbox's first kernel, whose job waits). On Debian `uname -p` answers
    "unknown", which platform reports as "": that answer is filled in instead."""
    import platform

    try:
        u = platform.uname()
        if sys.platform.startswith("linux") and "processor" not in vars(u):
            vars(u)["processor"] = ""
    except Exception:  # another Python's platform module: it runs uname as it will
        pass


seed_mpl_cache()
skip_uname_subprocess()

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy  # noqa: E402,F401
import threading  # noqa: E402

# The rest of the stack (pandas, seaborn, plotly): import_rest, before a kernel (or the
# kernel zygote) reports ready.
pandas = plotly = None


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
    """The kernel's figure capture state."""

    formats = ["png"]
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
    """Keeps the chart data of one captured figure for the execution's result (bounded)."""
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


# ---- errors ---------------------------------------------------------------------


class JobTimeout(BaseException):
    """The agent interrupted an execution for its timeout."""


class CPUTimeExceeded(BaseException):
    """An execution used its RLIMIT_CPU: SIGXCPU, handled."""


# Caps on an error's parts: str(exc) and a traceback are the code's to choose, and an
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
    """The traceback of exc from the code's own frames on (the kernel's are not the
    user's), capped: for the errors the kernel names itself (Timeout, CPU time)."""
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
