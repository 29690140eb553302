// Command seccomp-profile writes the sandbox agent's Localhost seccomp profile
// (internal/sandbox/seccompprofile) to config/seccomp/sandbox-agent.json.
package main

import (
	"log"
	"os"

	"github.com/vizops/viz-operator/internal/sandbox/seccompprofile"
)

func main() {
	if err := os.WriteFile(seccompprofile.Path, seccompprofile.JSON(), 0o644); err != nil {
		log.Fatal(err)
	}
}
