//go:build demo

package cli

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/usagemeter/usagemeter/collectors/horizon"
	hzsim "github.com/usagemeter/usagemeter/collectors/horizon/simulator"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

const (
	demoHorizonDomain   = "PROVIDER"
	demoHorizonUser     = "svc-usagemeter"
	demoHorizonPassword = "Hz-Meter!2026"
)

// demoWorkday is the share of a pod's users connected at each UTC hour of a
// working day (a European pod: busy from 07:00 to 17:00, lunch at 12:00).
var demoWorkday = [24]float64{0.03, 0.02, 0.02, 0.02, 0.03, 0.05, 0.15, 0.45, 0.8, 0.95, 0.97, 0.93, 0.75,
	0.9, 0.95, 0.9, 0.7, 0.4, 0.2, 0.12, 0.1, 0.08, 0.06, 0.04}

// demoHorizonPod is a Horizon pod (collectors/horizon/simulator), Enterprise
// edition: an instant-clone pool whose machines are provisioned as users
// connect (a few spare ones ahead of them) and removed at night, a pool of
// dedicated full clones, a disabled manual pool, and two RDSH farms whose
// sessions follow the working day. Sessions are rebuilt every hour; their
// user names exist only in the simulator (the collector counts sessions,
// and the demo prints only the report's figures).
type demoHorizonPod struct {
	rng     *rand.Rand
	day     int     // day of the month of factor
	factor  float64 // that day's attendance
	maxDesk int     // of the instant-clone pool
	maxSess int     // RDSH sessions, all farms
}

// Pool sizes: instant clones up to 140 machines for 120 users, 8 spare
// ahead of them, never fewer than 20; 30 dedicated machines; 4 kiosks.
const (
	demoICUsers, demoICMax, demoICMin, demoICSpare = 120, 140, 20, 8
	demoDedicated, demoKiosks                      = 30, 4
)

// demoHorizon starts the Horizon simulator.
func demoHorizon(seed uint64, start time.Time) (*demoProduct, error) {
	d := &demoHorizonPod{rng: rand.New(rand.NewPCG(seed, 0x4021)), day: -1}
	st := d.state(start)
	d.maxDesk, d.maxSess = 0, 0 // of the hours collected only
	srv, err := serveDemoSwap(hzsim.New(st), st)
	if err != nil {
		return nil, err
	}
	return &demoProduct{
		short: "hz01", srv: srv,
		desc: fmt.Sprintf("a Horizon pod, Enterprise: an instant-clone pool of %d to %d desktops, %d dedicated and %d kiosk desktops, RDSH farms of 10 servers; busy on working days",
			demoICMin, demoICMax, demoDedicated, demoKiosks),
		p: store.Product{Kind: horizon.Kind, Endpoint: srv.url, Username: demoHorizonDomain + `\` + demoHorizonUser,
			Password: config.Secret(demoHorizonPassword), Thumbprint: tlsutil.Normalize(srv.thumb)},
		tick: func(h int, at time.Time) {
			st := d.state(at)
			srv.set(st, func() http.Handler { return hzsim.New(st) })
		},
		churned: func() string {
			return fmt.Sprintf("Horizon: at most %d instant-clone desktops and %d RDSH sessions in an hour", d.maxDesk, d.maxSess)
		},
	}, nil
}

// load is the share of users connected at t.
func (d *demoHorizonPod) load(t time.Time) float64 {
	if t.Day() != d.day { // each day its own attendance
		d.day, d.factor = t.Day(), 0.8+0.2*d.rng.Float64()
	}
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		return 0.08 * d.factor * demoWorkday[t.Hour()] / 0.97
	}
	return math.Min(1, d.factor*demoWorkday[t.Hour()]*(0.95+0.1*d.rng.Float64()))
}

// state is the pod at t.
func (d *demoHorizonPod) state(t time.Time) hzsim.State {
	l := d.load(t)
	st := hzsim.State{Domain: demoHorizonDomain, User: demoHorizonUser, Password: demoHorizonPassword,
		Pod:      hzsim.Pod{ClusterGUID: demoID("horizon/pod/hz01"), ClusterName: "HZ-POD-01", PodName: "Cluster-HZCS01"},
		Licenses: []hzsim.License{{Edition: "HORIZON_ENTERPRISE_CONCURRENT_USER", UsageModel: "CONCURRENT_USER", Mode: "DEFAULT", Licensed: true}},
		DesktopPools: []hzsim.DesktopPool{
			{ID: demoID("hz/pool/acme-win11"), Name: "acme-win11", Type: "AUTOMATED", Source: "INSTANT_CLONE", Enabled: true},
			{ID: demoID("hz/pool/globex-dev"), Name: "globex-dev", Type: "AUTOMATED", Source: "VIRTUAL_CENTER", Enabled: true},
			{ID: demoID("hz/pool/kiosk"), Name: "kiosk-legacy", Type: "MANUAL", Source: "VIRTUAL_CENTER", Enabled: false},
			{ID: demoID("hz/pool/rds-desktop"), Name: "rds-desktop", Type: "RDS", Source: "RDS", Enabled: true},
		},
		Farms: []hzsim.Farm{
			{ID: demoID("hz/farm/office"), Name: "office-apps", Type: "AUTOMATED", Enabled: true},
			{ID: demoID("hz/farm/erp"), Name: "erp-apps", Type: "MANUAL", Enabled: true},
		},
		Machines: []hzsim.Machine{}, Sessions: []hzsim.Session{}, RDSServers: []hzsim.RDSServer{},
	}
	user := 0
	session := func(s hzsim.Session) {
		user++
		s.ID = demoID(fmt.Sprintf("hz/session/%s/%d", t.Format(time.RFC3339), user))
		s.User = fmt.Sprintf("user%04d", user)
		s.Client = fmt.Sprintf("CLIENT-%04d", user)
		s.State = "CONNECTED"
		if d.rng.IntN(8) == 0 {
			s.State = "DISCONNECTED"
		}
		st.Sessions = append(st.Sessions, s)
	}
	pool := func(i int) string { return st.DesktopPools[i].ID }
	// Instant clones: provisioned for the users connected, plus spares.
	users := int(math.Round(demoICUsers * l))
	n := min(max(users+demoICSpare, demoICMin), demoICMax)
	d.maxDesk = max(d.maxDesk, n)
	for i := 0; i < n; i++ {
		m := hzsim.Machine{ID: demoID(fmt.Sprintf("hz/machine/acme/%d", i)), Name: fmt.Sprintf("ACME-W11-%03d", i+1), PoolID: pool(0), State: "AVAILABLE", PowerState: "POWERED_ON"}
		if i < users {
			m.State = "CONNECTED"
			session(hzsim.Session{Type: "DESKTOP", MachineID: m.ID, PoolID: m.PoolID})
		}
		st.Machines = append(st.Machines, m)
	}
	// Dedicated full clones: always there, some in use.
	for i := 0; i < demoDedicated; i++ {
		m := hzsim.Machine{ID: demoID(fmt.Sprintf("hz/machine/globex/%d", i)), Name: fmt.Sprintf("GLOBEX-DEV-%02d", i+1), PoolID: pool(1),
			State: "AVAILABLE", PowerState: "POWERED_ON", Users: []string{fmt.Sprintf("dev%02d", i+1)}}
		if d.rng.Float64() < l {
			m.State = "CONNECTED"
			session(hzsim.Session{Type: "DESKTOP", MachineID: m.ID, PoolID: m.PoolID})
		}
		st.Machines = append(st.Machines, m)
	}
	// Kiosks of a disabled pool: still managed desktops.
	for i := 0; i < demoKiosks; i++ {
		st.Machines = append(st.Machines, hzsim.Machine{ID: demoID(fmt.Sprintf("hz/machine/kiosk/%d", i)), Name: fmt.Sprintf("KIOSK-%02d", i+1),
			PoolID: pool(2), State: "AVAILABLE", PowerState: "POWERED_OFF"})
	}
	// RDSH farms: 8 servers of office applications and RDS desktops, 2 of
	// the ERP client.
	servers := map[string][]string{}
	for _, f := range []struct {
		farm, prefix string
		n            int
	}{{st.Farms[0].ID, "RDSH-OFF", 8}, {st.Farms[1].ID, "RDSH-ERP", 2}} {
		for i := 0; i < f.n; i++ {
			id := demoID(fmt.Sprintf("hz/rds/%s/%d", f.prefix, i))
			st.RDSServers = append(st.RDSServers, hzsim.RDSServer{ID: id, Name: fmt.Sprintf("%s-%02d", f.prefix, i+1), FarmID: f.farm, Enabled: true})
			servers[f.farm] = append(servers[f.farm], id)
		}
	}
	before := len(st.Sessions)
	for i, n := 0, int(math.Round(260*l)); i < n; i++ {
		s := hzsim.Session{Type: "APPLICATION", FarmID: st.Farms[0].ID, RDSServerID: servers[st.Farms[0].ID][i%8]}
		if i%4 == 0 {
			s.Type, s.PoolID = "DESKTOP", pool(3)
		}
		session(s)
	}
	for i, n := 0, int(math.Round(40*l)); i < n; i++ {
		session(hzsim.Session{Type: "APPLICATION", FarmID: st.Farms[1].ID, RDSServerID: servers[st.Farms[1].ID][i%2]})
	}
	d.maxSess = max(d.maxSess, len(st.Sessions)-before)
	return st
}
