# Test helper (not part of generated code): imports the heavy libraries once, then
# forks a fresh child per script, so each test script runs in its own process without
# paying for the imports again. Protocol: one JSON request per stdin line,
# {"dir": ..., "script": ..., "timeout": seconds}; one JSON reply per stdout line,
# {"rc": exit code, or -1 on timeout}. The child's stdout and stderr go to
# stdout.txt and stderr.txt in dir. EOF on stdin ends the zygote.
import json
import os
import runpy
import signal
import sys
import time
import traceback

os.environ["MPLBACKEND"] = "Agg"
import matplotlib  # noqa: E402,F401
import matplotlib.pyplot  # noqa: E402,F401
import numpy  # noqa: E402,F401
import pandas  # noqa: E402,F401
import plotly.graph_objects  # noqa: E402,F401
import seaborn  # noqa: E402,F401


def run(req):
    out = os.open(os.path.join(req["dir"], "stdout.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err = os.open(os.path.join(req["dir"], "stderr.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    pid = os.fork()
    if pid == 0:
        rc = 0
        try:
            os.setsid()
            os.dup2(out, 1)
            os.dup2(err, 2)
            sys.stdin.close()
            os.chdir(req["dir"])
            sys.path.insert(0, req["dir"])
            sys.argv = [req["script"]]
            runpy.run_path(req["script"], run_name="__main__")
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
            rc = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    os.close(out)
    os.close(err)
    deadline = time.monotonic() + req.get("timeout", 60)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -1
        time.sleep(0.01)


for line in sys.stdin:
    reply = {"rc": run(json.loads(line))}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
