package vcenter

import (
	"context"
	"fmt"
	"strings"

	"github.com/vmware/govmomi/pbm"
	pbmtypes "github.com/vmware/govmomi/pbm/types"
)

// vSAN storage policy capability that selects the failure tolerance method:
// "RAID-1 (Mirroring) - Performance" or "RAID-5/6 (Erasure Coding) -
// Capacity".
const (
	vsanCapabilityNamespace = "VSAN"
	replicaPreference       = "replicaPreference"
)

// usesErasureCoding reports whether a storage policy asks vSAN for RAID-5/6.
func usesErasureCoding(p pbmtypes.BasePbmProfile) bool {
	cp, ok := p.(*pbmtypes.PbmCapabilityProfile)
	if !ok {
		return false
	}
	sub, ok := cp.Constraints.(*pbmtypes.PbmCapabilitySubProfileConstraints)
	if !ok {
		return false
	}
	for _, sp := range sub.SubProfiles {
		for _, c := range sp.Capability {
			if c.Id.Namespace != vsanCapabilityNamespace || c.Id.Id != replicaPreference {
				continue
			}
			for _, ci := range c.Constraint {
				for _, pi := range ci.PropertyInstance {
					if v, _ := pi.Value.(string); strings.Contains(v, "RAID-5/6") || strings.Contains(v, "Erasure Coding") {
						return true
					}
				}
			}
		}
	}
	return false
}

// markErasureCoding sets raid56 on the vSAN clusters that run a VM, or a VM
// disk, whose storage policy uses RAID-5/6 erasure coding (one feature in use
// puts the whole cluster on the edition, METERING.md). It reads the
// requirement policies from the Storage Policy service (PBM), and for the
// erasure-coded ones only, their associated VMs and disks.
func (c *Collector) markErasureCoding(ctx context.Context, s *sessionState, inv *inventory, vsan map[string]vsanCluster) error {
	if len(vsan) == 0 {
		return nil
	}
	if s.pbm == nil {
		err := c.call(ctx, func(ctx context.Context) error {
			var err error
			s.pbm, err = pbm.NewClient(ctx, s.vc)
			return err
		})
		if err != nil {
			return fmt.Errorf("connecting to the storage policy service of %s: %w", c.host, err)
		}
	}
	var ids []pbmtypes.PbmProfileId
	err := c.call(ctx, func(ctx context.Context) error {
		var err error
		ids, err = s.pbm.QueryProfile(ctx,
			pbmtypes.PbmProfileResourceType{ResourceType: string(pbmtypes.PbmProfileResourceTypeEnumSTORAGE)},
			string(pbmtypes.PbmProfileCategoryEnumREQUIREMENT))
		return err
	})
	if err != nil {
		return fmt.Errorf("listing the storage policies of %s: %w", c.host, err)
	}
	if len(ids) == 0 {
		return nil
	}
	var profiles []pbmtypes.BasePbmProfile
	err = c.call(ctx, func(ctx context.Context) error {
		var err error
		profiles, err = s.pbm.RetrieveContent(ctx, ids)
		return err
	})
	if err != nil {
		return fmt.Errorf("reading the storage policies of %s: %w", c.host, err)
	}

	var vmIndex map[string]*vmRec
	for _, p := range profiles {
		if !usesErasureCoding(p) {
			continue
		}
		if vmIndex == nil {
			vmIndex = make(map[string]*vmRec, len(inv.vms))
			for i := range inv.vms {
				vmIndex[inv.vms[i].ref] = &inv.vms[i]
			}
		}
		id := p.GetPbmProfile().ProfileId
		for _, kind := range []pbmtypes.PbmObjectType{pbmtypes.PbmObjectTypeVirtualMachine, pbmtypes.PbmObjectTypeVirtualDiskId} {
			var refs []pbmtypes.PbmServerObjectRef
			err := c.call(ctx, func(ctx context.Context) error {
				var err error
				refs, err = s.pbm.QueryAssociatedEntity(ctx, id, string(kind))
				return err
			})
			if err != nil {
				return fmt.Errorf("reading what uses storage policy %q of %s: %w", p.GetPbmProfile().Name, c.host, err)
			}
			for _, r := range refs {
				vmRef, _, _ := strings.Cut(r.Key, ":") // "vm-42" or "vm-42:2000" for a disk
				vm := vmIndex[vmRef]
				if vm == nil {
					continue
				}
				_, cl := inv.cluster(inv.hosts[vm.host])
				if v, ok := vsan[cl]; ok {
					v.raid56 = true
					vsan[cl] = v
				}
			}
		}
	}
	return nil
}
