package agent

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

// TestAgentEnforcesTheTimeout: the agent stops code at its request's timeout
// (ExecuteRequest.TimeoutMS) itself, so the figure still open when the code is
// interrupted is captured, as the Local zygote's job captures it.
func TestAgentEnforcesTheTimeout(t *testing.T) {
	c := client()
	tests := map[string]struct {
		code  string
		files []string
	}{
		"a figure open at the timeout is kept": {
			code:  "import matplotlib.pyplot as plt, time\nplt.plot([1, 2])\nplt.show()\nopen('early.txt', 'w').write('x')\nplt.plot([2, 1])\nwhile True:\n    time.sleep(0.01)",
			files: []string{"figure_1.png", "figure_2.png", "early.txt"},
		},
		"code that swallows the interrupt still times out": {
			code:  "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nwhile True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass",
			files: nil, // its kernel is killed after InterruptGrace: the open figure is lost
		},
		"code that ends after the interrupt is a timeout": {
			code:  "import time\ntry:\n    time.sleep(3600)\nexcept BaseException:\n    print('caught')",
			files: nil,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res, err := c.Run(testCtx(t), sandbox.Request{Code: tc.code, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range res.Files {
				names = append(names, f.Name)
			}
			if !res.TimedOut || res.Success || res.Error == nil || res.Error.Name != sandbox.ErrNameTimeout || fmt.Sprint(names) != fmt.Sprint(tc.files) {
				t.Errorf("result: timedOut %v, error %+v, files %v; want a Timeout with files %v", res.TimedOut, res.Error, names, tc.files)
			}
		})
	}
	t.Run("the stream says so in the vocabulary", func(t *testing.T) {
		id := newContext(t)
		var msgs []codeinterpreter.Message
		err := c.Execute(testCtx(t), codeinterpreter.ExecuteRequest{Code: "import time\ntime.sleep(3600)", ContextID: id, TimeoutMS: 500},
			func(m codeinterpreter.Message) { msgs = append(msgs, m) })
		if err != nil {
			t.Fatal(err)
		}
		errs := ofType(msgs, codeinterpreter.TypeError)
		if len(errs) != 1 || errs[0].Name != sandbox.ErrNameTimeout || !strings.Contains(errs[0].Value, "500ms") || !strings.Contains(errs[0].Traceback, "sleep") || strings.Contains(errs[0].Traceback, "kernel_run") {
			t.Errorf("errors = %+v, want one Timeout naming 500ms with the code's traceback", errs)
		}
		// The context lives on: the code was interrupted, not its interpreter killed.
		if text, _ := mainText(execute(t, id, "6 * 7")); text != "42" {
			t.Errorf("after the timeout: %q", text)
		}
	})
}

// TestKernelCPUTimeLimit: an execution with a timeout runs under RLIMIT_CPU of
// sandbox.CPUTimeLimit(timeout) (counted from the kernel's CPU time so far), and code
// past it fails with CPUTimeLimitExceeded, as the Local zygote's job does.
func TestKernelCPUTimeLimit(t *testing.T) {
	c := client()
	t.Run("the limit is set for the execution", func(t *testing.T) {
		res, err := c.Run(testCtx(t), sandbox.Request{Timeout: 2 * time.Second, Code: sandboxtest.CPULimitProbe})
		if err != nil {
			t.Fatal(err)
		}
		sandboxtest.CheckCPULimit(t, res, 2*time.Second)
	})
	t.Run("code past the limit fails with its name", func(t *testing.T) {
		res, err := c.Run(testCtx(t), sandbox.Request{Timeout: time.Minute, Code: sandboxtest.CPUBurner})
		if err != nil {
			t.Fatal(err)
		}
		if res.Error == nil || res.Error.Name != sandbox.ErrNameCPUTimeLimitExceeded || res.Stdout != "burning\n" {
			t.Errorf("error %+v, stdout %q; want %s", res.Error, res.Stdout, sandbox.ErrNameCPUTimeLimitExceeded)
		}
	})
}
