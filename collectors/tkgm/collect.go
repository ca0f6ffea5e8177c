package tkgm

import (
	"context"
	"fmt"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
)

// maxNamed is how many unjoined machines a warning names.
const maxNamed = 20

// Collect reads the management cluster's clusters and machines, joins them
// to the paired vCenter's VMs and returns the observations.
func (c *Collector) Collect(ctx context.Context, hour time.Time) ([]collectors.Observation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.warned.reset()
	clusters, err := listAll(ctx, c, resClusters, parseCluster)
	if err != nil {
		return nil, err
	}
	machines, err := listAll(ctx, c, resMachines, parseMachine)
	if err != nil {
		return nil, err
	}
	vms, err := c.vms(ctx)
	if err != nil {
		return nil, fmt.Errorf("tkgm %s: reading the paired vCenter: %w", c.host, err)
	}
	obs, sum := build(c.host, c.opts.Metric, clusters, machines, vms)
	c.last = sum
	c.log.Info("TKG clusters read", "clusters", sum.Clusters, "machines", sum.Machines, "billed", sum.Billed,
		"not_billed", sum.NotBilled, "no_provider_id", sum.NoProviderID, "other_infrastructure", sum.OtherInfra,
		"unjoined", len(sum.Unjoined), "observations", len(obs))
	if n := len(sum.Unjoined); n > 0 {
		named := sum.Unjoined[:min(n, maxNamed)]
		c.log.Warn("machines whose VM the paired vCenter does not know (not billed): is the product paired with the vCenter they run on?",
			"unjoined", n, "machines", named)
	}
	if sum.Duplicates > 0 {
		c.log.Warn("machines naming a VM another machine names: the VM bills once", "machines", sum.Duplicates)
	}
	return obs, nil
}

// Summary is what the last collection read and left out.
func (c *Collector) Summary() Summary {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.last
	s.Unjoined = append([]string(nil), s.Unjoined...)
	return s
}
