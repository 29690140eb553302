package main

import (
	"github.com/go-logr/logr"
)

// discardLogger keeps controller-runtime's client quiet: the demo prints its own story.
func discardLogger() logr.Logger { return logr.Discard() }
