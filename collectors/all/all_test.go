package all_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/collectors"
	_ "github.com/usagemeter/usagemeter/collectors/all"
)

// TestKindsAreDeclaredWhole: every linked-in kind has a display name, options
// whose defaults its own constructor accepts, and pairs only with a kind that
// is linked in too.
func TestKindsAreDeclaredWhole(t *testing.T) {
	names := collectors.Kinds()
	for _, want := range []string{"horizon", "horizon-daas", "nsxt", "nsxv", "srm", "tkgm", "vcd", "vcda", "vcenter", "vra7", "vra8", "vrni", "vrops"} {
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

// probed is the Target the "logprobe" kind was last built with.
var probed collectors.Target

func init() {
	collectors.Register(collectors.Kind{Name: "logprobe", DisplayName: "Log probe", New: func(t collectors.Target) (collectors.Collector, error) {
		probed = t
		return nil, nil
	}})
}

// TestLogLinesNameKindAndHost: collectors.New gives every collector a logger
// that names its kind and the product's host under one key.
func TestLogLinesNameKindAndHost(t *testing.T) {
	var buf bytes.Buffer
	tgt := collectors.Target{Kind: "logprobe", Endpoint: "https://vc01.example:8443/sdk", Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	if _, err := collectors.New(tgt); err != nil {
		t.Fatal(err)
	}
	probed.Logger.Info("hello")
	if line := buf.String(); !strings.Contains(line, " collector=logprobe ") || !strings.Contains(line, " "+collectors.LogKeyHost+"=vc01.example\n") {
		t.Fatalf("log line %q", line)
	}
}
