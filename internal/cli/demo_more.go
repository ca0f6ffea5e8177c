//go:build demo

package cli

import (
	"context"
	"net/http"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// demoProduct is a product of the demo beyond the vCenters and the first
// REST products (SRM, VCDA, Horizon, Horizon DaaS: one constructor each in
// runDemoWith's list). Each is registered as `product add` does, brought to
// every hour before it is collected, and named in the summary.
type demoProduct struct {
	short string        // short name in the summary, e.g. "srm01"
	desc  string        // the rest of its product line
	p     store.Product // what `product add` registers (ID set once added)
	srv   *demoSwapServer
	// tick brings the product's state to hour h of the month (at), after
	// the vCenters' churn of that hour.
	tick func(h int, at time.Time)
	// churned says what its churn did over the run ("" when nothing).
	churned func() string
}

func (d *demoProduct) close() { d.srv.stop() }

// demoSwapServer serves a simulator whose state the demo replaces: the
// SRM, VCDA, Horizon and DaaS simulators hold a state fixed at New, so a changed
// state is a new simulator behind the same TLS listener and certificate
// (the product's address and thumbprint stay). The new simulator does not
// know the old one's sessions: the collector logs in again, as it does
// when a real product's session expired between two hours.
type demoSwapServer struct {
	cur        atomic.Pointer[demoHandler]
	last       any // the state the current simulator holds
	url, thumb string
	stop       func()
}

type demoHandler struct{ http.Handler }

func (s *demoSwapServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.cur.Load().ServeHTTP(w, r)
}

// serveDemoSwap starts the server with the simulator h, holding state st.
func serveDemoSwap(h http.Handler, st any) (*demoSwapServer, error) {
	s := &demoSwapServer{last: st}
	s.cur.Store(&demoHandler{h})
	var err error
	if s.url, s.thumb, s.stop, err = tlsutil.ServeLoopback(s); err != nil {
		return nil, err
	}
	return s, nil
}

// set puts a simulator made by mk in front when st differs from the state
// served now.
func (s *demoSwapServer) set(st any, mk func() http.Handler) {
	if reflect.DeepEqual(st, s.last) {
		return
	}
	s.last = st
	s.cur.Store(&demoHandler{mk()})
}

// demoFolderOf is the name of the VM folder vm is in ("" if none).
func demoFolderOf(v *demoVCenter, vm *simulator.VirtualMachine) string {
	if vm.Parent == nil {
		return ""
	}
	if f, ok := v.sim.Model.Map().Get(*vm.Parent).(mo.Entity); ok {
		return f.Entity().Name
	}
	return ""
}

// serve runs the daemon of an opened appliance until ctx is cancelled (the
// demo). ready, if not nil, receives the HTTP address once listening.
func serve(ctx context.Context, app *appliance.App, ready chan<- string) error {
	return appliance.Run(ctx, app, Version, ready, webHandler())
}
