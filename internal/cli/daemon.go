package cli

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// daemon is the long-running part of serve: scheduler and workers.
type daemon struct {
	app *App
}

func newDaemon(app *App, reg *prometheus.Registry) (*daemon, error) { return &daemon{app: app}, nil }

// Start launches the scheduler.
func (d *daemon) Start(ctx context.Context) {}

// Stop stops the scheduler and waits for running jobs.
func (d *daemon) Stop() {}
