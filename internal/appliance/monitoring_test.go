package appliance

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/usagemeter/usagemeter/internal/httpapi"
)

// recorder is a Registerer that notes the name and labels of every metric
// registered through it, children of vectors included before any exists.
type recorder struct {
	prometheus.Registerer
	labels map[string][]string // metric name -> variable labels
}

var descRE = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

func (r *recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := descRE.FindStringSubmatch(d.String()); m != nil {
			var ls []string
			if m[2] != "" {
				ls = strings.Split(m[2], ",")
			}
			r.labels[m[1]] = ls
		}
	}
	return r.Registerer.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// TestMonitoringKitMatchesMetrics (issue 16): every metric and label the
// Prometheus rules and the Grafana dashboard in deploy/monitoring use is
// exported by the daemon (a renamed metric fails here, not silently on a
// provider's dashboard), and the exported names follow Prometheus's
// conventions: counters end in _total, Unix times in _timestamp_seconds,
// durations in _seconds; per-product metrics carry kind and host.
func TestMonitoringKitMatchesMetrics(t *testing.T) {
	h := newHarness(t, nil)
	reg := prometheus.NewRegistry()
	rec := &recorder{Registerer: reg, labels: map[string][]string{}}
	if _, err := newDaemonWith(h.app, rec, daemonOptions{now: h.clock.Now}); err != nil {
		t.Fatal(err)
	}
	api := prometheus.NewRegistry()
	httpapi.New(nil, api, "test", 1)
	fams, err := api.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		rec.labels[f.GetName()] = nil
	}
	rec.labels["up"] = []string{"job", "instance"} // Prometheus's own

	var exprs []string
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile("../../deploy/monitoring/usagemeter-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("rules: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	b, err = os.ReadFile("../../deploy/monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	if len(exprs) < 20 {
		t.Fatalf("%d expressions in the kit", len(exprs))
	}

	used := map[string]bool{}
	nameRE := regexp.MustCompile(`\b(usagemeter_[a-z_]+|up)\b(\{([^}]*)\})?`)
	labelRE := regexp.MustCompile(`(\w+)\s*(=~|!=|!~|=)`)
	for _, e := range exprs {
		for _, m := range nameRE.FindAllStringSubmatch(e, -1) {
			labels, ok := rec.labels[m[1]]
			if !ok {
				t.Errorf("%q uses %s, which the daemon does not export", e, m[1])
				continue
			}
			used[m[1]] = true
			for _, l := range labelRE.FindAllStringSubmatch(m[3], -1) {
				if !slices.Contains(labels, l[1]) {
					t.Errorf("%q selects label %s of %s, which has %v", e, l[1], m[1], labels)
				}
			}
		}
	}
	for name, labels := range rec.labels {
		if name == "up" {
			continue
		}
		switch {
		case strings.Contains(name, "timestamp") && !strings.HasSuffix(name, "_timestamp_seconds"):
			t.Errorf("%s: a Unix time ends in _timestamp_seconds", name)
		case strings.Contains(name, "failures") && !strings.HasSuffix(name, "_total"):
			t.Errorf("%s: a counter ends in _total", name)
		}
		if slices.Contains(labels, "product") && !(slices.Contains(labels, "kind") && slices.Contains(labels, "host")) {
			t.Errorf("%s: per-product labels %v lack kind and host", name, labels)
		}
		if !used[name] && strings.HasPrefix(name, "usagemeter_") && name != "usagemeter_build_info" && name != "usagemeter_outbox_failed" && name != "usagemeter_outbox_misconfigured" {
			t.Errorf("%s is exported but neither alerted on nor charted", name)
		}
	}
}
