package vcenter

import (
	"context"
	"fmt"

	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vsan"
	vsanmethods "github.com/vmware/govmomi/vsan/methods"
	vsantypes "github.com/vmware/govmomi/vsan/types"
)

// vsanSpaceReportSystem is the vSAN health service object that answers
// VsanQuerySpaceUsage (pyVmomi vsanapiutils names it so).
var vsanSpaceReportSystem = types.ManagedObjectReference{
	Type:  "VsanSpaceReportSystem",
	Value: "vsan-cluster-space-report-system",
}

// vsanCluster is what is metered of one vSAN cluster.
type vsanCluster struct {
	usedGB      float64
	dedup       bool
	compression bool
	raid56      bool // a VM or disk on the cluster has a RAID-5/6 storage policy
	encryption  bool // data-at-rest encryption
	stretched   bool // a witness host is configured
}

// vSAN editions (METERING.md, assumed map).
const (
	VSANStandard   = "standard"
	VSANAdvanced   = "advanced"
	VSANEnterprise = "enterprise"
)

// edition maps the features in use to the vSAN edition that licenses them
// (METERING.md, assumed map): Enterprise = data-at-rest encryption or a
// stretched cluster; Advanced = deduplication/compression or RAID-5/6
// erasure coding; Standard otherwise.
func (v vsanCluster) edition() string {
	switch {
	case v.encryption || v.stretched:
		return VSANEnterprise
	case v.dedup || v.compression || v.raid56:
		return VSANAdvanced
	}
	return VSANStandard
}

// features names the features in use, for the observation's dims.
func (v vsanCluster) features() []string {
	var f []string
	if v.dedup {
		f = append(f, "deduplication")
	}
	if v.compression {
		f = append(f, "compression")
	}
	if v.raid56 {
		f = append(f, "raid5/6")
	}
	if v.encryption {
		f = append(f, "encryption")
	}
	if v.stretched {
		f = append(f, "stretched")
	}
	return f
}

// vsanClusters reads, for every vSAN-enabled cluster of inv, its
// configuration, witness hosts and space usage from the vSAN health service
// (three calls per vSAN cluster; clusters are few).
func (c *Collector) vsanClusters(ctx context.Context, s *sessionState, inv *inventory) (map[string]vsanCluster, error) {
	out := map[string]vsanCluster{}
	var vc *vsan.Client
	for _, ref := range sortedKeys(inv.nodes) {
		n := inv.nodes[ref]
		if n.typ != "ClusterComputeResource" || !n.vsan {
			continue
		}
		if vc == nil {
			var err error
			if vc, err = vsan.NewClient(ctx, s.vc); err != nil {
				return nil, fmt.Errorf("connecting to the vSAN service of %s: %w", c.host, err)
			}
		}
		cl := types.ManagedObjectReference{Type: "ClusterComputeResource", Value: ref}
		var v vsanCluster

		var cfg *vsantypes.VsanConfigInfoEx
		err := c.call(ctx, func(ctx context.Context) error {
			var err error
			cfg, err = vc.VsanClusterGetConfig(ctx, cl)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("reading the vSAN configuration of cluster %s (%s) on %s: %w", n.name, ref, c.host, err)
		}
		if de := cfg.DataEfficiencyConfig; de != nil {
			v.dedup = de.DedupEnabled
			v.compression = de.CompressionEnabled != nil && *de.CompressionEnabled
		}
		if enc := cfg.DataEncryptionConfig; enc != nil {
			v.encryption = enc.EncryptionEnabled
		}

		err = c.call(ctx, func(ctx context.Context) error {
			r, err := vsanmethods.VSANVcGetWitnessHosts(ctx, vc, &vsantypes.VSANVcGetWitnessHosts{
				This: vsan.VsanVcStretchedClusterSystem, Cluster: cl,
			})
			if err == nil {
				v.stretched = len(r.Returnval) > 0
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("reading the witness hosts of vSAN cluster %s (%s) on %s: %w", n.name, ref, c.host, err)
		}

		err = c.call(ctx, func(ctx context.Context) error {
			r, err := vsanmethods.VsanQuerySpaceUsage(ctx, vc, &vsantypes.VsanQuerySpaceUsage{
				This: vsanSpaceReportSystem, Cluster: cl,
			})
			if err == nil {
				v.usedGB = bytesToGB(r.Returnval.TotalCapacityB - r.Returnval.FreeCapacityB)
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("reading the vSAN space usage of cluster %s (%s) on %s: %w", n.name, ref, c.host, err)
		}
		out[ref] = v
	}
	return out, nil
}
