package pyrunner

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestImportingPandasRunsNoProcess: Debian's pandas reads platform.uname() on import,
// which runs `uname -p` in a subprocess unless base.py filled the answer in (a fork of
// the whole interpreter on a new sandbox's first job). The kernel's own source is
// loaded with subprocess.Popen recording every call, then the rest of the stack.
func TestImportingPandasRunsNoProcess(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import pandas").Run(); err != nil {
		t.Skipf("%s cannot import pandas: %v", python, err)
	}
	spy := "import subprocess\nSPAWNED = []\n_popen = subprocess.Popen\n" +
		"class _Spy(_popen):\n    def __init__(self, args, *a, **k):\n        SPAWNED.append(args)\n        super().__init__(args, *a, **k)\n" +
		"subprocess.Popen = _Spy\n"
	// Only uname counts: with an empty MPLCONFIGDIR matplotlib builds its font cache
	// with fc-list (a sandbox copies a prebuilt one).
	check := "\nimport platform\nimport_rest()\nprint('uname', [a for a in SPAWNED if 'uname' in str(a)], 'processor', repr(platform.processor()))\n"
	cmd := exec.Command(python, "-I", "-B", "-c", spy+ChartDataSource+"\n"+baseMain+check, "{}")
	home := t.TempDir()
	cmd.Env = []string{"HOME=" + home, "MPLCONFIGDIR=" + home, "MPLBACKEND=Agg", "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), "uname [] processor ''") {
		t.Errorf("importing the stack ran processes or changed platform's answer: %s", out)
	}
}
