package agent

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
)

// TestCells: the agent advertises HeaderCells and runs an execution's prelude, code and
// epilogue in one stream, in order, with a marker before the code's and the
// epilogue's messages.
func TestCells(t *testing.T) {
	c := client()
	ctx := testCtx(t)
	cx, err := c.CreateContext(ctx, codeinterpreter.CreateContextRequest{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.DeleteContext(ctx, cx.ID) }()
	if !cx.Cells {
		t.Fatalf("POST /contexts did not advertise %s", codeinterpreter.HeaderCells)
	}
	run := func(req codeinterpreter.ExecuteRequest) string {
		t.Helper()
		req.ContextID = cx.ID
		var trace []string
		err := c.Execute(ctx, req, func(m codeinterpreter.Message) {
			switch m.Type {
			case codeinterpreter.TypeCell:
				trace = append(trace, "cell:"+m.Name)
			case codeinterpreter.TypeStdout:
				trace = append(trace, strings.TrimSpace(m.Text))
			case codeinterpreter.TypeError:
				trace = append(trace, "error:"+m.Name)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(trace, " ")
	}
	for name, tc := range map[string]struct {
		req  codeinterpreter.ExecuteRequest
		want string
	}{
		"all three, in order, in one context": {
			req:  codeinterpreter.ExecuteRequest{Prelude: "a = 1\nprint('pre')", Code: "print(a + 1)", Epilogue: "print('epi', a)", TimeoutMS: 60000},
			want: "pre cell:code 2 cell:epilogue epi 1",
		},
		"a prelude that raises ends the stream before the code": {
			req:  codeinterpreter.ExecuteRequest{Prelude: "raise OSError('disk full')", Code: "print('ran')", Epilogue: "print('epi')"},
			want: "error:OSError",
		},
		"the epilogue runs after the code ended its interpreter, on a fresh one": {
			req:  codeinterpreter.ExecuteRequest{Prelude: "b = 2\nprint('pre')", Code: "import os\nos._exit(3)", Epilogue: "print('fresh', 'b' in globals())"},
			want: "pre cell:code error:" + sandbox.ErrNameProcessExited + " cell:epilogue fresh False",
		},
		"the epilogue runs after a timeout": {
			req:  codeinterpreter.ExecuteRequest{Code: "import time\ntime.sleep(60)", Epilogue: "print('epi')", TimeoutMS: 500},
			want: "error:" + sandbox.ErrNameTimeout + " cell:epilogue epi",
		},
		"without them, a plain execution": {
			req:  codeinterpreter.ExecuteRequest{Code: "print('plain')"},
			want: "plain",
		},
	} {
		t.Run(name, func(t *testing.T) {
			if got := run(tc.req); got != tc.want {
				t.Errorf("stream = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPrecompiledCells: a cell that starts with one of codeinterpreter.CellDefinitions
// (compiled by the kernel before it took a job) runs as the same code compiled whole:
// the definition is there, and an error after it has the cell's own line number.
func TestPrecompiledCells(t *testing.T) {
	c, ctx, id := client(), testCtx(t), newContext(t)
	for _, def := range codeinterpreter.CellDefinitions {
		lines := strings.Count(def, "\n")
		name := def[len("def "):strings.Index(def, "(")]
		var out, tb string
		err := c.Execute(ctx, codeinterpreter.ExecuteRequest{ContextID: id,
			Code: def + "print(callable(" + name + "))\nx = 1\n1/0\n"}, func(m codeinterpreter.Message) {
			switch m.Type {
			case codeinterpreter.TypeStdout:
				out += m.Text
			case codeinterpreter.TypeError:
				tb = m.Traceback
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) != "True" {
			t.Errorf("%s after its definition: callable printed %q, want True", name, out)
		}
		if want := fmt.Sprintf("line %d", lines+3); !strings.Contains(tb, want) || !strings.Contains(tb, "1/0") {
			t.Errorf("traceback does not point at the cell's %s (1/0):\n%s", want, tb)
		}
	}
}
