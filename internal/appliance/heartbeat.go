package appliance

import (
	"context"

	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
)

// heartbeatJob sends the hourly heartbeat to the receiver the appliance is
// enrolled with (`usagemeter enrol`): its version, each product's last
// successful hour and the open alerts, no usage and no names. Nothing when
// it is not enrolled; a failure is logged (the receiver alerts a silent
// appliance itself).
func (d *Daemon) heartbeatJob(ctx context.Context) {
	enr, err := protocol.Load(d.app.Config.DataDir)
	if err != nil {
		d.app.Log.Error("receiver heartbeat", "err", err)
		return
	}
	if enr == nil {
		return
	}
	hb, err := protocol.HeartbeatOf(ctx, d.app.Store, d.version, d.now())
	if err == nil {
		err = enr.SendHeartbeat(ctx, hb)
	}
	if err != nil {
		d.app.Log.Warn("receiver heartbeat failed", "receiver", enr.URL, "err", err)
		return
	}
	d.app.Log.Debug("receiver heartbeat sent", "receiver", enr.URL)
}
