package all_test

import (
	"encoding/json"
	"testing"

	"github.com/usagemeter/usagemeter/collectors"
	_ "github.com/usagemeter/usagemeter/collectors/all"
)

// TestKindsAreDeclaredWhole: every linked-in kind has a display name, options
// whose defaults its own constructor accepts, and pairs only with a kind that
// is linked in too.
func TestKindsAreDeclaredWhole(t *testing.T) {
	names := collectors.Kinds()
	for _, want := range []string{"nsxt", "nsxv", "srm", "vcd", "vcenter"} {
		if _, ok := collectors.Lookup(want); !ok {
			t.Errorf("kind %s is not linked in (have %v)", want, names)
		}
	}
	for _, name := range names {
		k, _ := collectors.Lookup(name)
		if k.DisplayName == "" || k.DisplayName == k.Name {
			t.Errorf("%s: display name %q", name, k.DisplayName)
		}
		if k.PairsWith != "" {
			if _, ok := collectors.Lookup(k.PairsWith); !ok {
				t.Errorf("%s pairs with %s, which is not linked in", name, k.PairsWith)
			}
		}
		if k.Options == nil {
			continue
		}
		raw, err := json.Marshal(k.Options())
		if err != nil {
			t.Fatalf("%s: options: %v", name, err)
		}
		tgt := collectors.Target{Kind: name, Endpoint: "https://product.example", Username: "meter", Password: "pw", Options: raw}
		if k.PairsWith != "" {
			tgt.Paired = &collectors.Target{Kind: k.PairsWith, Endpoint: "https://vc.example", Username: "meter", Password: "pw", InstanceID: "5003aaaa-0000-4000-8000-000000000001"}
		}
		if _, err := collectors.New(tgt); err != nil {
			t.Errorf("%s: the default options %s are refused: %v", name, raw, err)
		}
	}
}
