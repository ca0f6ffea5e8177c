package vcenter

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
)

// TestRealVCenter runs a collection against a real vCenter when
// USAGEMETER_TEST_VCENTER_URL is set (https://user:password@host), trusting
// the system roots or USAGEMETER_TEST_VCENTER_THUMBPRINT. It checks what must
// hold anywhere; the figures depend on the vCenter.
func TestRealVCenter(t *testing.T) {
	raw := os.Getenv("USAGEMETER_TEST_VCENTER_URL")
	if raw == "" {
		t.Skip("USAGEMETER_TEST_VCENTER_URL not set")
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		t.Fatalf("USAGEMETER_TEST_VCENTER_URL: want https://user:password@host")
	}
	pass, _ := u.User.Password()
	c, err := newCollector(collectors.Target{
		Kind:       Kind,
		Endpoint:   u.Host,
		Username:   u.User.Username(),
		Password:   collectors.Secret(pass),
		Thumbprint: os.Getenv("USAGEMETER_TEST_VCENTER_THUMBPRINT"),
		Options:    []byte(os.Getenv("USAGEMETER_TEST_VCENTER_OPTIONS")),
		Timeout:    time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	defer c.Close(ctx)
	id, err := c.Identify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := c.Collect(ctx, time.Now().Truncate(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, o := range obs {
		count[o.Metric]++
		if !strings.HasPrefix(o.ObjectKey, id.InstanceID+"/") {
			t.Errorf("key %s not under the vCenter %s", o.ObjectKey, id.InstanceID)
		}
		if o.Metric == collectors.MetricVMVRAM && (o.Quantity <= 0 || o.Quantity > collectors.VRAMCapMB) {
			t.Errorf("%s: %v MB", o.ObjectKey, o.Quantity)
		}
	}
	t.Logf("%s %s build %s: %v in %d pages", id.Name, id.Version, id.Build, count, c.pages)
}
