package vcenter

import (
	"context"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
)

// TestCollectDefaultInventory collects the simulator's default vCenter as
// it comes: 4 powered-on VMs, each billed half of its 32 MB.
func TestCollectDefaultInventory(t *testing.T) {
	v := newSim(t, nil)
	c := v.collector(v.target("", ""))
	obs, err := c.Collect(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, o := range obs {
		if o.Metric == collectors.MetricVMVRAM {
			n++
			if o.Quantity != 16 || o.Unit != collectors.UnitMB {
				t.Errorf("%s: %v %s, want 16 MB", o.Dims[DimVM], o.Quantity, o.Unit)
			}
		}
	}
	if n != 4 {
		t.Errorf("%d vm.vram observations, want 4", n)
	}
}
