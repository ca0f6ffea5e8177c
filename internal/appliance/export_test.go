package appliance

import "context"

// What the external tests (package appliance_test, which may import the
// receiver: the receiver imports this package) reach inside.

// RunHeartbeat runs the daemon's receiver heartbeat job once (cron
// "41 * * * *").
func (d *Daemon) RunHeartbeat(ctx context.Context) { d.heartbeatJob(ctx) }

// LogBuffer is a log destination safe for concurrent writers.
type LogBuffer = syncBuffer
