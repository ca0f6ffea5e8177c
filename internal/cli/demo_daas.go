//go:build demo

package cli

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/usagemeter/usagemeter/collectors/horizondaas"
	daassim "github.com/usagemeter/usagemeter/collectors/horizondaas/simulator"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

const (
	demoDaaSDomain   = "SP"
	demoDaaSUser     = "svc-usagemeter"
	demoDaaSPassword = "DaaS-Meter!2026"
)

// demoDaaSTenant is a tenant of the demo's DaaS service provider: its
// quota's edition and how many of its users work at the busiest hour.
type demoDaaSTenant struct {
	id, name, edition string
	users             int
	disabled          bool
}

var demoDaaSTenants = []demoDaaSTenant{
	{id: "1001", name: "Acme Corp", edition: "ENTERPRISE", users: 180},
	{id: "1002", name: "Globex", edition: "STANDARD", users: 60},
	{id: "1003", name: "Initech", edition: "ADVANCED", users: 45},
	{id: "1004", name: "Hooli (offboarded)", edition: "STANDARD", users: 20, disabled: true},
}

// demoDaaSProvider is a Horizon DaaS service provider
// (collectors/horizondaas/simulator) hosting desktops for four tenants, one
// of them disabled. Its concurrent connections follow the working day; the
// collector samples them every six hours (00, 06, 12, 18 UTC), as the
// programme meters DaaS. Session users exist only in the simulator.
type demoDaaSProvider struct {
	rng     *rand.Rand
	day     int
	factor  float64
	maxConn int // all tenants, at a sampled hour
}

// demoDaaS starts the DaaS simulator.
func demoDaaS(seed uint64, start time.Time) (*demoProduct, error) {
	d := &demoDaaSProvider{rng: rand.New(rand.NewPCG(seed, 0xdaa5)), day: -1}
	st := d.state(start)
	d.maxConn = 0 // of the hours collected only
	srv, err := serveDemoSwap(daassim.New(st), st)
	if err != nil {
		return nil, err
	}
	return &demoProduct{
		short: "daas01", srv: srv,
		desc: "a Horizon DaaS service provider: tenants Acme Corp (Enterprise), Globex (Standard), Initech (Advanced) and a disabled one; sampled every 6 hours",
		p: store.Product{Kind: horizondaas.Kind, Endpoint: srv.url, Username: demoDaaSDomain + `\` + demoDaaSUser,
			Password: config.Secret(demoDaaSPassword), Thumbprint: tlsutil.Normalize(srv.thumb)},
		tick: func(h int, at time.Time) {
			if at.Hour()%6 != 0 { // collected every 6 hours only
				return
			}
			st := d.state(at)
			srv.set(st, func() http.Handler { return daassim.New(st) })
		},
		churned: func() string {
			return fmt.Sprintf("Horizon DaaS: at most %d concurrent connections at a 6-hourly sample", d.maxConn)
		},
	}, nil
}

// state is the service provider at t.
func (d *demoDaaSProvider) state(t time.Time) daassim.State {
	if t.Day() != d.day {
		d.day, d.factor = t.Day(), 0.8+0.2*d.rng.Float64()
	}
	load := d.factor * demoWorkday[t.Hour()]
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		load *= 0.1
	}
	st := daassim.State{User: demoDaaSUser, Password: demoDaaSPassword, Domain: demoDaaSDomain}
	conns := 0
	for _, tn := range demoDaaSTenants {
		ten := daassim.Tenant{ID: tn.id, Name: tn.name, Edition: tn.edition, Quota: tn.users, Disabled: tn.disabled, Sessions: []daassim.Session{}}
		n := int(math.Round(float64(tn.users) * math.Min(1, load*(0.95+0.1*d.rng.Float64()))))
		for i := 0; i < n; i++ {
			s := daassim.Session{ID: demoID(fmt.Sprintf("daas/%s/%s/%d", tn.id, t.Format(time.RFC3339), i)), Pool: "desktops",
				VM: fmt.Sprintf("%s-VD-%03d", tn.id, i+1), Protocol: "BLAST", User: fmt.Sprintf("daasuser%04d", i+1)}
			if i%9 == 8 {
				s.State = "DISCONNECTED" // not a concurrent connection
			}
			ten.Sessions = append(ten.Sessions, s)
		}
		if !tn.disabled {
			conns += n - n/9
		}
		st.Tenants = append(st.Tenants, ten)
	}
	d.maxConn = max(d.maxConn, conns)
	return st
}
