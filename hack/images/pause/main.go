// Command pause is the e2e cluster's Pod sandbox ("pause") container: it holds the Pod's
// namespaces, reaps orphaned children (it is PID 1 when the Pod shares its process
// namespace) and exits on SIGINT or SIGTERM. No registry can be reached on the
// development VM, so hack/images/build makes the pause image from this program.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
