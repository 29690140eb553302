

# ---- the sandbox-agent's kernel (kernel.py) ------------------------------------------
# Appended to chartdata.py and base.py; runs when CONFIG["kernel"] is set. One kernel is
# one code-interpreter context: a long-lived interpreter whose variables persist between
# executions, like a notebook's kernel. It uses base.py's figure capture (plt.show, open
# figures, plotly), chart-data read-back, last-expression value, error formatting and
# seccomp filter.
#
# Channels with the Go side (internal/sandbox/agent), framed (4-byte big-endian length +
# JSON): requests on fd 0 ({"op": "execute", "id", "code",
# "env_vars", "cpu_seconds"}, {"op": "interrupt", "id", "timeout"}, {"op": "chdir", "id",
# "path"}; an interrupt with "timeout" raises JobTimeout, not KeyboardInterrupt); messages on
# fd CONFIG["results_fd"] ({"type": "ready" | "fatal" | "stdout" | "stderr" | "result"
# | "error" | "done", ...}), in E2B's message shapes. Output written to fds 1 and 2
# directly (by subprocesses) reaches Go on pipes and is forwarded as stdout/stderr.


KERNEL_OUTPUT_MARK = b"\x00vizops-kernel-ready\x00"


class KernelState:
    forked = False  # forked by the kernel zygote, which may not have imported the rest yet
    precompiled = None  # [(source, code object, lines)] of CONFIG["precompiled"]
    out_fd = None
    lock = None
    running = None  # id of the execution in progress
    timed_out = False  # the agent interrupted it for its timeout
    scope = None


def kernel_emit(msg):
    data = json.dumps(msg).encode()
    # An interrupt must not cut a frame in half: SIGINT waits until it is written.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        with KernelState.lock:
            write_all(KernelState.out_fd, struct.pack(">I", len(data)) + data)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class KernelStream(io.TextIOBase):
    """sys.stdout / sys.stderr of the kernel: text becomes stdout/stderr messages."""

    def __init__(self, name, fd):
        self.kind, self.fd, self.buf, self.size = name, fd, [], 0

    @property
    def encoding(self):
        return "utf-8"

    def writable(self):
        return True

    def isatty(self):
        return False

    def fileno(self):
        return self.fd  # subprocesses given sys.stdout write here; Go forwards it

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        self.buf.append(s)
        self.size += len(s)
        if "\n" in s or self.size > 8192:
            self.flush()
        return len(s)

    def flush(self):
        if self.buf:
            text, self.buf, self.size = "".join(self.buf), [], 0
            kernel_emit({"type": self.kind, "text": text})


def kernel_flush_streams():
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            pass


def kernel_flush_figures():
    """Sends the figures captured since the last call as result messages, in order."""
    kernel_flush_streams()
    try:
        names = sorted(os.listdir(FIGDIR))
    except OSError:
        return
    groups = {}
    order = []
    for name in names:
        key = name.split(".", 1)[0]
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(name)
    limit = CONFIG.get("max_artifact_bytes") or (32 << 20)
    for key in order:
        base = key.split("_", 1)[1] if "_" in key else key
        msg = {"type": "result", "is_main_result": False}
        extra = {}
        size = 0
        for name in groups[key]:
            path = os.path.join(FIGDIR, name)
            try:
                with open(path, "rb") as f:
                    data = f.read(limit + 1)
                os.unlink(path)
            except OSError:
                continue
            size += len(data)
            ext = name.rsplit(".", 1)[-1]
            if ext == "png":
                msg["png"] = base64.b64encode(data).decode()
            elif ext == "svg":
                msg["svg"] = data.decode("utf-8", "replace")
            elif ext == "html":
                msg["html"] = data.decode("utf-8", "replace")
            elif ext == "json" and "_plotly_" in name:
                try:
                    extra["application/vnd.plotly.v1+json"] = json.loads(data)
                except ValueError:
                    pass
        charts = [c for c in Capture.charts if c.get("figure") == base]
        Capture.charts = [c for c in Capture.charts if c.get("figure") != base]
        if charts:
            extra["vizops/chart"] = charts
        if extra:
            msg["extra"] = extra
        if size > limit:
            kernel_emit({"type": "stderr", "text": "vizops: %s is %d bytes; the sandbox sends at most %d bytes of one figure, "
                         "so it was dropped. Lower its dpi or size.\n" % (base, size, limit)})
            continue
        if len(msg) > 2 or extra:
            kernel_emit(msg)


def kernel_value_result(value):
    """The cell's value as E2B's server reports it (text/plain, quotes stripped)."""
    msg = {"type": "result", "is_main_result": True}
    text = cap_text(repr(value), CONFIG["max_output_bytes"])
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    msg["text"] = text
    html = getattr(value, "_repr_html_", None)
    if callable(html) and not isinstance(value, type):
        try:
            h = html()
            if isinstance(h, str):
                msg["html"] = h
        except Exception:
            pass
    return msg


def kernel_on_sigint(signum, frame):
    if KernelState.running is not None:
        if KernelState.timed_out:
            raise JobTimeout()
        raise KeyboardInterrupt()


def kernel_on_sigxcpu(signum, frame):
    # A handler, not the default action: a kernel that is PID 1 of its namespace
    # ignores a signal it does not handle, and this one lets it report.
    if KernelState.running is not None:
        raise CPUTimeExceeded()


def kernel_cpu_limit(seconds):
    """RLIMIT_CPU for one execution: the CPU time used so far plus seconds (the agent's
    sandbox.CPUTimeLimit of the execution's timeout); none when seconds is 0. Only the
    soft limit moves, since a kernel runs many executions; the wall-clock timeout,
    which the agent enforces from outside, bounds code that raises it."""
    import math
    import resource

    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        if seconds:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            want = int(math.ceil(ru.ru_utime + ru.ru_stime)) + int(seconds)
            if hard != resource.RLIM_INFINITY:
                want = min(want, hard)
        else:
            want = hard
        resource.setrlimit(resource.RLIMIT_CPU, (want, hard))
    except (OSError, ValueError):
        pass


def kernel_precompile():
    """Compiles CONFIG["precompiled"] (the client's prelude and epilogue definitions)
    once: in the kernel zygote before it forks, so a forked kernel compiles only a
    job's own code; in a kernel of its own before it reports ready."""
    if KernelState.precompiled is None:
        KernelState.precompiled = [(src, compile(src, "<cell>", "exec"), src.count("\n"))
                                   for src in CONFIG.get("precompiled") or [] if src.endswith("\n")]


def kernel_split_precompiled(code):
    """The compiled definition code starts with and the number of its lines, or None."""
    for src, obj, lines in KernelState.precompiled or ():
        if code.startswith(src):
            return obj, lines
    return None


def kernel_run(job):
    import ast
    import linecache

    code = job.get("code") or ""
    env = job.get("env_vars") or {}
    saved = {k: os.environ.get(k) for k in env}
    scope = KernelState.scope
    KernelState.timed_out = False
    KernelState.running = job["id"]
    try:
        for k, v in env.items():
            os.environ[str(k)] = str(v)
        if plotly is None and "plotly" in code:
            import_plotly()  # a kernel forked before the zygote imported it: show() is patched first
        fmts = os.environ.get("VIZOPS_FIGURE_FORMATS")
        Capture.formats = [f for f in fmts.split(",") if f in ("png", "svg")] if fmts else ["png"]
        try:
            linecache.cache["<cell>"] = (len(code), None, code.splitlines(True), "<cell>")
            # A cell that starts with a precompiled definition (the client's prelude
            # or epilogue) compiles only what follows it, at its own line numbers.
            pre = kernel_split_precompiled(code)
            if pre is not None:
                rest = code.split("\n", pre[1])[-1]
                tree = ast.increment_lineno(ast.parse(rest, "<cell>"), pre[1])
            else:
                tree = ast.parse(code, "<cell>")
            last = None
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = ast.Expression(tree.body.pop().value)
            value = None
            kernel_cpu_limit(job.get("cpu_seconds") or 0)
            try:
                if pre is not None:
                    exec(pre[0], scope)
                exec(compile(tree, "<cell>", "exec"), scope)
                if last is not None:
                    value = eval(compile(last, "<cell>", "eval"), scope)
                    if value is not None:
                        scope["_"] = value
            finally:
                kernel_cpu_limit(0)
            if last is not None:
                if plotly is not None and isinstance(value, plotly.basedatatypes.BaseFigure):
                    capture_plotly(value)
                elif value is not None and not is_matplotlib_value(value):
                    kernel_flush_figures()
                    kernel_emit(kernel_value_result(value))
        except SystemExit as e:
            if e.code not in (None, 0):
                kernel_flush_figures()
                kernel_emit(dict(format_error(e), type="error"))
        except (JobTimeout, CPUTimeExceeded) as e:
            # The agent names the error (its own timeout, the CPU-time limit).
            kernel_cpu_limit(0)
            kernel_flush_figures()
            limit = "Timeout" if isinstance(e, JobTimeout) else "CPUTimeLimitExceeded"
            kernel_emit({"type": "error", "name": limit, "value": "", "limit": limit,
                         "traceback": cell_traceback(e)})
        except BaseException as e:  # the user's code may raise anything, KeyboardInterrupt included
            kernel_flush_figures()
            err = dict(format_error(e), type="error")
            limit = kernel_limit_hit(e)
            if limit:
                err["limit"] = limit  # the agent names the error after the limit
            kernel_emit(err)
        # Like Jupyter's inline backend: figures left open at the end of the cell are shown.
        try:
            capture_open_figures()
        except BaseException as e:
            kernel_emit({"type": "stderr", "text": "vizops: capturing the open figures failed: %s\n" % e})
        kernel_flush_figures()
    finally:
        KernelState.running = None
        KernelState.timed_out = False
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        kernel_flush_streams()
        kernel_emit({"type": "done", "id": job["id"]})


def kernel_limit_hit(e):
    """The sandbox.ErrName* of the limit an exception of the code reports, if any."""
    if isinstance(e, MemoryError):
        return "MemoryLimitExceeded"
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return "ScratchLimitExceeded"
    if isinstance(e, OSError) and e.errno == errno.EAGAIN:
        tb = "".join(traceback.format_tb(e.__traceback__))
        if "fork" in tb or "_execute_child" in tb:  # os.fork, subprocess
            return "ProcessLimitExceeded"
    if isinstance(e, RuntimeError) and str(e) == "can't start new thread":
        return "ProcessLimitExceeded"
    return None


def kernel_private_mounts():
    # CONFIG["private_mounts"] (the Local backend's agent): a kernel that is PID 1 of
    # its own namespaces mounts a /proc of its own PID namespace (it sees only its own
    # processes), a private, size-capped /tmp, and keeps of the agent's work directory
    # only its own directories (kernel_private_work): nothing a context writes is seen
    # by the next one. Without a PID namespace it refuses to start.
    if not CONFIG.get("private_mounts"):
        return
    if os.getpid() != 1:
        raise RuntimeError("private mounts need a PID namespace of the kernel's own, and none could be made")
    ms_rec, ms_private = 16384, 1 << 18
    if libc.mount(None, b"/", None, ms_rec | ms_private, None) != 0:
        die_errno("make the kernel's mounts private")
    if libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) != 0:
        die_errno("mount the kernel's /proc")
    opts = ("size=%d,mode=1777" % ((CONFIG.get("limits") or {}).get("scratch_bytes") or (64 << 20))).encode()
    if libc.mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, opts) != 0:
        die_errno("mount the kernel's /tmp")
    kernel_private_work()


def kernel_private_work():
    # The agent keeps every context's directories (and the spare kernel's home) under one
    # work directory, writable by the sandbox's user, which every kernel is. An empty
    # tmpfs goes over it, this kernel's own directories (its working directory, its
    # figures, its home) are bound back from fds opened before, and the tmpfs is made
    # read-only: the code can neither see another context's files nor leave one where
    # the next context would find it. Its own directories outlive the kernel, so a
    # fresh kernel of the same context (after os._exit) still finds its files.
    own = [d for d in (WORK, FIGDIR, os.environ.get("HOME")) if d and os.path.isabs(d)]
    root = os.path.commonpath(own) if own else "/"
    if root == "/" or any(d == root for d in own):
        raise RuntimeError("private mounts need the kernel's directories below one work directory, got %s" % own)
    ms_rdonly, ms_remount, ms_bind = 1, 32, 4096
    fds = [os.open(d, os.O_PATH | os.O_DIRECTORY) for d in own]
    if libc.mount(b"tmpfs", root.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64k,mode=0755") != 0:
        die_errno("cover the agent's work directory")
    for d, fd in zip(own, fds):
        os.makedirs(d, exist_ok=True)
        if libc.mount(("/proc/self/fd/%d" % fd).encode(), d.encode(), None, ms_bind, None) != 0:
            die_errno("bind the kernel's %s" % d)
        os.close(fd)
    if libc.mount(None, root.encode(), None, ms_remount | ms_bind | ms_rdonly | MS_NOSUID | MS_NODEV, None) != 0:
        die_errno("make the agent's work directory read-only")
    os.chdir(WORK)


def kernel_hide_paths():
    # An empty read-only tmpfs over each path (the agent's token directory), in the
    # kernel's own mount namespace, before any code runs: the code cannot read what is
    # below, nor unmount it (kernel_harden drops every capability, and the seccomp
    # filter refuses umount). Mounts are made private first, so nothing propagates out.
    paths = CONFIG.get("hide_paths") or []
    if not paths:
        return
    ms_rdonly, ms_nosuid, ms_nodev, ms_noexec, ms_rec, ms_private = 1, 2, 4, 8, 16384, 1 << 18
    if libc.mount(None, b"/", None, ms_rec | ms_private, None) != 0:
        die_errno("make the kernel's mounts private")
    for p in paths:
        if os.path.exists(p) and libc.mount(b"tmpfs", p.encode(), b"tmpfs", ms_rdonly | ms_nosuid | ms_nodev | ms_noexec, b"size=4k,mode=0555") != 0:
            die_errno("hide %s" % p)


def kernel_harden():
    import resource

    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")  # under memory pressure a kernel dies, not the agent
    except OSError:
        pass
    limits = CONFIG.get("limits") or {}
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limits.get("file_bytes"):
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"],) * 2)
    # Memory and processes: rlimits only when the agent gives them (no cgroup enforces
    # them); RLIMIT_AS counts address space, so the budget goes on top of what the warm
    # interpreter maps.
    if limits.get("memory_bytes"):
        with open("/proc/self/statm") as f:
            vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (vm + limits["memory_bytes"],) * 2)
    if limits.get("pids"):
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["pids"],) * 2)
    try:
        drop_capabilities()
    except OSError:
        # Without CAP_SETPCAP (a non-root user, as in a hardened Pod) the bounding set
        # cannot be changed; then no capability may be held at all.
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("CapEff:", "CapPrm:")) and int(line.split()[1], 16) != 0:
                    raise
    install_seccomp()
    prctl(PR_SET_DUMPABLE, 0)


def kernel_reader(in_fd, jobs):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    while True:
        try:
            req = json.loads(read_frame_raw(in_fd, 1 << 30))
        except BaseException:
            jobs.put(None)
            return
        op = req.get("op")
        if op == "interrupt":
            if KernelState.running is not None and KernelState.running == req.get("id"):
                if req.get("timeout"):
                    KernelState.timed_out = True  # JobTimeout, not KeyboardInterrupt
                # To the main thread itself: a signal to the process could be taken by
                # another thread and leave the code's blocking call uninterrupted.
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        else:
            jobs.put(req)


def kernel_main():
    import builtins
    import queue

    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    in_fd = os.dup(0)
    KernelState.out_fd = os.dup(CONFIG["results_fd"])
    KernelState.lock = threading.Lock()
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    keep_fds({in_fd, KernelState.out_fd})
    try:
        for d in (WORK, FIGDIR, os.environ.get("MPLCONFIGDIR"), os.environ.get("XDG_CACHE_HOME")):
            if d:
                os.makedirs(d, exist_ok=True)
        os.chdir(WORK)
        kernel_private_mounts()
        kernel_hide_paths()
        if not KernelState.forked:
            import_rest()
            warm_up()
        elif plotly is not None:
            warm_up()  # forked from a zygote with the whole stack: the job's render is warm
        # else the first kernel of a new sandbox: its job, which waits for it, renders
        # cold, as a bare interpreter would, and imports what it uses.
        kernel_precompile()
        kernel_harden()
    except BaseException as e:
        traceback.print_exc()
        kernel_emit({"type": "fatal", "message": "the kernel failed to start: %s" % e})
        return
    Capture.after = kernel_flush_figures
    KernelState.scope = {"__name__": "__main__", "__builtins__": builtins}
    sys.stdout = KernelStream("stdout", 1)
    sys.stderr = KernelStream("stderr", 2)
    signal.signal(signal.SIGINT, kernel_on_sigint)
    signal.signal(signal.SIGXCPU, kernel_on_sigxcpu)
    jobs = queue.Queue()
    threading.Thread(target=kernel_reader, args=(in_fd, jobs), daemon=True).start()
    # What reaches fds 1 and 2 from here on belongs to executions; the Go side drops
    # what came before this mark (import warnings) from them.
    for fd in (1, 2):
        write_all(fd, KERNEL_OUTPUT_MARK)
    kernel_emit({"type": "ready"})
    while True:
        job = jobs.get()
        if job is None:
            return
        if job.get("op") == "chdir":
            try:
                os.makedirs(job["path"], exist_ok=True)
                os.chdir(job["path"])
                kernel_emit({"type": "done", "id": job["id"]})
            except OSError as e:
                kernel_emit({"type": "error", "name": type(e).__name__, "value": str(e), "traceback": ""})
                kernel_emit({"type": "done", "id": job["id"]})
            continue
        try:
            kernel_run(job)
        except (KeyboardInterrupt, JobTimeout, CPUTimeExceeded):
            # An interrupt that landed between the code's end and the reply.
            kernel_emit({"type": "done", "id": job["id"]})


# ---- the kernel zygote (CONFIG["zygote"]) ------------------------------------------------
# The agent's fork-ahead: one process imports the plotting stack once, then forks each
# kernel from it instead of starting a new interpreter. Requests come on fd 0, a
# SOCK_SEQPACKET socket: {"config": {...}, "env": {...}} with the kernel's four fds
# (stdin, results, stdout, stderr) attached (SCM_RIGHTS). The zygote answers
# {"pid": P} for each, and {"exit": P, "status": S} (a raw wait status) when one ends.
# The agent starts the zygote in user, PID and mount namespaces of its own (its user
# mapped to itself, CAP_SYS_ADMIN and CAP_SETPCAP there only), so the zygote forks
# each kernel straight into a new PID namespace (kernel_zygote_fork) and the kernel
# unshares mount and IPC namespaces itself: PID 1 of its own, as isolated as one the
# agent starts itself, with no process standing in between. The zygote runs no code
# of a request, and forks only while single-threaded.


def kernel_zygote_child(req, fds):
    global WORK, FIGDIR, OUTPUT_DIR
    KernelState.forked = True
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setsid()
    # IPC too: a SysV segment or queue outlives its creator, and must not reach the next
    # context's kernel.
    if libc.unshare(CLONE_NEWNS | CLONE_NEWIPC) != 0:
        die_errno("unshare the kernel's namespaces")
    stdin, results, out, err = fds
    os.dup2(stdin, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.dup2(results, CONFIG["results_fd"])
    keep_fds({CONFIG["results_fd"]})
    CONFIG.update(req.get("config") or {})
    WORK = CONFIG.get("work_dir") or WORK
    FIGDIR = CONFIG.get("fig_dir") or FIGDIR
    OUTPUT_DIR = WORK + "/outputs"
    os.environ.clear()
    os.environ.update(req.get("env") or {})
    kernel_main()


def zygote_new_pidns():
    """The zygote's next child is PID 1 of a new PID namespace."""
    if libc.unshare(CLONE_NEWPID) != 0:
        die_errno("unshare a kernel's PID namespace")


def zygote_own_pidns(own_pidns):
    """The zygote's next child is in its own PID namespace again (a second unshare needs
    that). Returns whether it could."""
    return libc.setns(own_pidns, CLONE_NEWPID) == 0


def kernel_zygote_fork(own_pidns):
    """Forks a kernel as PID 1 of a new PID namespace, and returns os.fork's answer."""
    zygote_new_pidns()
    pid = os.fork()
    if pid != 0 and not zygote_own_pidns(own_pidns):
        # Every later fork would fail: end, and the agent starts kernels without a zygote.
        print("the kernel zygote cannot return to its PID namespace: %s" % os.strerror(ctypes.get_errno()), file=sys.stderr, flush=True)
        os.kill(pid, signal.SIGKILL)
        os._exit(70)
    return pid


def warm_rest_niced():
    """Imports the rest of the stack and renders the warm-up at the lowest priority, in
    a thread of its own (Linux's nice is per thread, and the kernels forked later
    inherit the main thread's), so that it takes no CPU from the first kernel's job,
    which runs beside it. The main thread waits for it and forks nothing meanwhile: a
    fork while another thread imports could leave the child a held import lock."""
    import gc
    import threading

    def work():
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:
            pass
        try:
            import_rest()
            warm_up()
        except BaseException:
            traceback.print_exc()  # each kernel then imports what it uses
        gc.collect()  # here, at nice 19, not in the main thread beside a job
        gc.freeze()

    t = threading.Thread(target=work, name="warm-rest")
    t.start()
    t.join()


def kernel_zygote_main():
    import array
    import socket

    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=os.dup(0))
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)  # stray prints of libraries go to the log
    os.close(null)
    own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    keep_fds({ctl.fileno(), own_pidns})

    def send(msg, fds=()):
        socket.send_fds(ctl, [json.dumps(msg).encode()], list(fds))

    # Ready once matplotlib and numpy are in (base.py): a new sandbox's first kernel,
    # whose job waits for it, is forked at once; the rest of the stack (pandas, seaborn,
    # plotly: most of the import time) and the warm-up render come after that first
    # fork, so the first kernel imports only what its job uses and every later one has
    # it all, warm.
    rest_imported = False
    try:
        # What each fork needs, tried once: a seccomp filter that refuses unshare or
        # setns (a Pod's) ends the zygote here, and the agent starts kernels without it.
        zygote_new_pidns()
        if not zygote_own_pidns(own_pidns):
            die_errno("return to the zygote's PID namespace")
        kernel_precompile()
    except BaseException as e:
        traceback.print_exc()
        send({"type": "fatal", "message": "the kernel zygote failed to start: %s" % e})
        return
    import gc

    # The kernels' collections do not touch (and copy) the shared pages. No collection
    # first: with only imports done it finds nothing and takes about 20 ms of a new
    # sandbox's start (warm_rest_niced collects after the rest of the stack).
    gc.freeze()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    send({"type": "ready"})
    while True:
        readable, _, _ = select.select([ctl, wake_r], [], [])
        if wake_r in readable:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                send({"type": "exit", "pid": pid, "status": status})
        if ctl not in readable:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(ctl, 1 << 20, 4)
        except OSError:
            return
        if not data:
            return  # the agent is gone
        try:
            req = json.loads(data)
            if len(fds) != 4:
                raise ValueError("a kernel needs 4 fds, got %d" % len(fds))
            pid = kernel_zygote_fork(own_pidns)
        except BaseException as e:
            for fd in fds:
                os.close(fd)
            send({"type": "error", "message": str(e)})
            continue
        if pid == 0:
            try:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.close(wake_r)
                os.close(wake_w)
                kernel_zygote_child(req, fds)
            except BaseException:
                traceback.print_exc()
            os._exit(70)
        for fd in fds:
            os.close(fd)
        # The pid is the zygote's, in its own PID namespace; the agent learns its own
        # from the pidfd (/proc/self/fdinfo).
        pidfd = os.pidfd_open(pid)
        send({"type": "forked", "pid": pid}, [pidfd])
        os.close(pidfd)
        if not rest_imported:
            rest_imported = True
            warm_rest_niced()
            send({"type": "warm"})


if CONFIG.get("zygote"):
    kernel_zygote_main()
elif CONFIG.get("kernel"):
    kernel_main()
