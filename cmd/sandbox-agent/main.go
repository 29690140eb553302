// Command sandbox-agent serves E2B's code-interpreter protocol (port 49999) in a
// sandbox Pod, and on a host for development and tests. Its flags and the server are
// internal/sandbox/agent (Main), which the Local backend also runs, re-executing the
// manager's binary inside bubblewrap.
//
//	sandbox-agent --listen 127.0.0.1:49999 --token-file /var/run/vizops/token
package main

import (
	"fmt"
	"os"

	"github.com/vizops/viz-operator/internal/sandbox/agent"
)

func main() {
	if err := agent.Main(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-agent:", err)
		os.Exit(1)
	}
}
