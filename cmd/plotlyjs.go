package main

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/vizops/viz-operator/internal/plotlyjs"
)

// plotlyJSServer serves plotly.js on every replica, leader or not: it is static.
type plotlyJSServer struct {
	bundle *plotlyjs.Bundle
	addr   string
}

func (s plotlyJSServer) Start(ctx context.Context) error { return s.bundle.Serve(ctx, s.addr) }
func (plotlyJSServer) NeedLeaderElection() bool          { return false }

func servePlotlyJS(mgr ctrl.Manager, addr, file string) error {
	b, err := plotlyjs.Load(file)
	if err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("serving plotly.js", "address", addr, "path", "/"+b.FileName(), "from", b.Path)
	return mgr.Add(plotlyJSServer{bundle: b, addr: addr})
}
