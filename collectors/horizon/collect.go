package horizon

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// Dimension names of the observations.
const (
	DimVM           = "vm"           // machine name
	DimPool         = "desktop_pool" // desktop pool name (its id when the pool is not listed)
	DimPoolType     = "pool_type"    // AUTOMATED, MANUAL
	DimFarm         = "farm"         // farm name (its id when the farm is not listed)
	DimFarmType     = "farm_type"    // AUTOMATED, MANUAL
	DimPod          = "pod"          // the pod's cluster name
	DimHorizon      = "horizon"      // the Connection Server's host
	DimUsageModel   = "usage_model"  // the licence's NAMED_USER or CONCURRENT_USER
	DimRulesVersion = "rules_version"
)

// UnknownFarm is the farm id of RDSH sessions whose farm the API does not
// say (no farm_id, and an RDS server that is not listed).
const UnknownFarm = "-"

// inventory is what one collection reads.
type inventory struct {
	pod      environment
	edition  string
	usage    string
	pools    []desktopPool
	farms    []farm
	servers  []rdsServer
	machines []machine
	sessions []session
}

// Collect reads the pod and returns its desktop VMs under management and
// its RDSH session counts per farm.
func (c *Collector) Collect(ctx context.Context, hour time.Time) ([]collectors.Observation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.rc.EnsureSession(ctx, &c.sess); err != nil {
		return nil, err
	}
	in, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	obs, sk := build(c.host, in)
	if sk.machines() > 0 {
		c.log.Info("machines not counted as desktop VMs under management", "in_no_pool", sk.noPool,
			"deleting", sk.deleting, "missing_in_vcenter", sk.missing, "without_id", sk.machineNoID)
	}
	if sk.poolNotListed > 0 {
		c.log.Info("machines of a desktop pool not listed (created during the collection?) counted", "count", sk.poolNotListed)
	}
	if sk.noMachine > 0 || sk.sessionNoID > 0 {
		c.log.Warn("session records skipped", "neither_machine_nor_farm", sk.noMachine, "without_id", sk.sessionNoID)
	}
	if sk.dupMachines > 0 || sk.dupSessions > 0 {
		c.log.Debug("records listed twice counted once", "machines", sk.dupMachines, "sessions", sk.dupSessions)
	}
	c.log.Debug("collected", "desktop_vms", sk.desktops, "rdsh_sessions", sk.rdsh, "vdi_sessions", sk.vdi, "edition", in.edition)
	c.last.machines, c.last.sessions = len(in.machines), len(in.sessions)
	return obs, nil
}

// read lists what the rules need.
func (c *Collector) read(ctx context.Context) (*inventory, error) {
	pod, err := c.environment(ctx)
	if err != nil {
		return nil, err
	}
	in := &inventory{pod: *pod, machines: make([]machine, 0, c.last.machines), sessions: make([]session, 0, c.last.sessions)}
	if in.edition, in.usage, err = c.edition(ctx); err != nil {
		return nil, err
	}
	if in.pools, err = list[desktopPool](ctx, c, "/inventory/v1/desktop-pools"); err != nil {
		return nil, err
	}
	if in.farms, err = list[farm](ctx, c, "/inventory/v1/farms"); err != nil {
		return nil, err
	}
	if err := listAll(ctx, c, "/inventory/v1/rds-servers", func(s *rdsServer) string { return s.ID },
		func(s *rdsServer) { in.servers = append(in.servers, *s) }); err != nil {
		return nil, err
	}
	if err := listAll(ctx, c, "/inventory/v1/machines", func(m *machine) string { return m.ID },
		func(m *machine) { in.machines = append(in.machines, *m) }); err != nil {
		return nil, err
	}
	if err := listAll(ctx, c, "/inventory/v1/sessions", func(s *session) string { return s.ID },
		func(s *session) { in.sessions = append(in.sessions, *s) }); err != nil {
		return nil, err
	}
	return in, nil
}

// edition reads the pod's licence edition. A server without the licence
// API (404) gives the edition option, else none.
func (c *Collector) edition(ctx context.Context) (edition, usage string, err error) {
	const path = "/config/v1/licenses"
	a, err := c.get(ctx, path)
	switch {
	case rest.StatusIs(err, http.StatusNotFound):
		if !c.noLic {
			c.noLic = true
			c.log.Info("the Connection Server has no licence API (/rest/config/v1/licenses, Horizon 2206 and later): edition from the edition option",
				"edition", c.opts.Edition)
		}
		return c.opts.Edition, "", nil
	case rest.StatusIs(err, http.StatusForbidden):
		return "", "", fmt.Errorf("horizon %s: %s: %w (the metering account needs the GLOBAL_CONFIG_VIEW privilege)", c.host, path, err)
	case err != nil:
		return "", "", fmt.Errorf("horizon %s: %s: %w", c.host, path, err)
	}
	ls, err := parseList[license](a.body)
	if err != nil {
		return "", "", fmt.Errorf("horizon %s: %s: %w", c.host, path, err)
	}
	edition, usage, unknown := editionOf(ls)
	if len(unknown) > 0 {
		c.log.Warn("licence editions not in the edition map, not used", "license_editions", unknown)
	}
	if edition == "" {
		edition = c.opts.Edition
		c.log.Info("no licensed Horizon edition found: edition from the edition option", "licenses", len(ls), "edition", edition)
	}
	return edition, usage, nil
}

// skipped counts what build leaves out or counts specially.
type skipped struct {
	noPool, deleting, missing, machineNoID int
	poolNotListed                          int
	noMachine, sessionNoID                 int
	dupMachines, dupSessions               int
	desktops, rdsh, vdi                    int
}

func (s skipped) machines() int { return s.noPool + s.deleting + s.missing + s.machineNoID }

// build turns the inventory into observations. It is pure: the Horizon
// rules of METERING.md live here and in rules.go.
func build(host string, in *inventory) ([]collectors.Observation, skipped) {
	var sk skipped
	guid := in.pod.ClusterGUID
	common := func(d map[string]string) map[string]string {
		d[DimPod] = in.pod.ClusterName
		d[DimHorizon] = host
		d[DimRulesVersion] = RulesVersion
		if in.usage != "" {
			d[DimUsageModel] = in.usage
		}
		return d
	}
	pools := make(map[string]*desktopPool, len(in.pools))
	for i := range in.pools {
		pools[in.pools[i].ID] = &in.pools[i]
	}
	obs := make([]collectors.Observation, 0, len(in.machines)+len(in.farms)+1)
	seen := make(map[string]bool, len(in.machines))
	for i := range in.machines {
		m := &in.machines[i]
		if ok, why := machineCounts(m); !ok {
			switch why {
			case "in_no_pool":
				sk.noPool++
			case "deleting":
				sk.deleting++
			case "missing_in_vcenter":
				sk.missing++
			default:
				sk.machineNoID++
			}
			continue
		}
		if seen[m.ID] {
			sk.dupMachines++
			continue
		}
		seen[m.ID] = true
		poolName, poolType := m.PoolID, ""
		if p := pools[m.PoolID]; p != nil {
			poolName, poolType = p.Name, p.Type
		} else {
			sk.poolNotListed++
		}
		d := common(map[string]string{DimVM: m.Name, DimPool: poolName})
		if poolType != "" {
			d[DimPoolType] = poolType
		}
		obs = append(obs, collectors.Observation{
			Metric: collectors.MetricDesktopVM, ObjectKey: guid + "/machine/" + m.ID,
			Quantity: 1, Unit: collectors.UnitCount, Edition: in.edition, Dims: d,
		})
	}
	sk.desktops = len(obs)

	serverFarm := make(map[string]string, len(in.servers))
	for _, s := range in.servers {
		serverFarm[s.ID] = s.FarmID
	}
	perFarm := map[string]int{}
	counted := make(map[string]bool, len(in.sessions))
	for i := range in.sessions {
		s := &in.sessions[i]
		if s.ID == "" {
			sk.sessionNoID++
			continue
		}
		if counted[s.ID] {
			sk.dupSessions++
			continue
		}
		counted[s.ID] = true
		switch {
		case rdsh(s):
			f := s.FarmID
			if f == "" {
				f = serverFarm[s.RDSServerID]
			}
			if f == "" {
				f = UnknownFarm
			}
			perFarm[f]++
			sk.rdsh++
		case s.MachineID != "":
			sk.vdi++ // its desktop VM is what is billed
		default:
			sk.noMachine++
		}
	}
	farms := make(map[string]*farm, len(in.farms))
	for i := range in.farms {
		farms[in.farms[i].ID] = &in.farms[i]
	}
	ids := make([]string, 0, len(perFarm))
	for id := range perFarm {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		d := map[string]string{DimFarm: id}
		if f := farms[id]; f != nil {
			d[DimFarm] = f.Name
			if f.Type != "" {
				d[DimFarmType] = f.Type
			}
		}
		obs = append(obs, collectors.Observation{
			Metric: collectors.MetricRDSHSession, ObjectKey: guid + "/farm/" + id,
			Quantity: float64(perFarm[id]), Unit: collectors.UnitCount, Edition: in.edition, Dims: common(d),
		})
	}
	return obs, sk
}
