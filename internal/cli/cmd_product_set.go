package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/store"
)

func init() {
	register(&command{name: "product set", summary: "change a vCenter's VCF edition or Tanzu metric from this hour (--id N --vcf-edition E|none --tanzu-metric vram|cores [--from HOUR])", run: runProductSet})
}

// runProductSet changes the settings of a registered product that decide
// its billing. Each change is recorded with the hour it applies from; the
// report splits the month there, the collector reads it from its next hour.
func runProductSet(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "product set")
	id := fs.Int64("id", 0, "product id (see product list)")
	vcf := fs.String("vcf-edition", "", "vcenter: the VCF edition (standard, advanced, enterprise, with -vsan, or sddc-manager); none to unflag")
	tanzu := fs.String("tanzu-metric", "", "vcenter: Tanzu metered by vram or cores")
	fromFlag := fs.String("from", "", "the hour the change applies from (RFC 3339); default the current hour. Hours before it keep the old setting")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *id == 0 {
		return usagef("--id is required (see usagemeter product list)")
	}
	if *vcf == "" && *tanzu == "" {
		return usagef("nothing to change: give --vcf-edition or --tanzu-metric")
	}
	app, from, now, err := openForChange(ctx, e, *cfgPath, *fromFlag)
	if err != nil {
		return err
	}
	defer app.Close()
	p, err := app.Store.Product(ctx, *id)
	if err != nil {
		return err
	}
	changes := map[string]string{}
	if *vcf != "" {
		if *vcf == "none" {
			*vcf = ""
		}
		changes[store.SettingVCFEdition] = *vcf
	}
	if *tanzu != "" {
		changes[store.SettingTanzuMetric] = *tanzu
	}
	// The kind validates the options it would collect with.
	opts := map[string]any{}
	if err := json.Unmarshal(p.Options, &opts); err != nil {
		return fmt.Errorf("product %d options: %w", p.ID, err)
	}
	for k, v := range changes {
		opts[k] = v
	}
	raw, _ := json.Marshal(opts)
	// Only the options are checked here: the account stands in when the
	// product has none recorded.
	user, pw := p.Username, p.Password
	if user == "" {
		user, pw = "validation", "validation"
	}
	if _, err := collectors.New(collectors.Target{Kind: p.Kind, Endpoint: p.Endpoint, Username: user, Password: pw, Options: raw}); err != nil {
		return err
	}
	for _, k := range []string{store.SettingVCFEdition, store.SettingTanzuMetric} {
		v, ok := changes[k]
		if !ok {
			continue
		}
		if err := app.Store.ChangeProductOption(ctx, p.ID, k, v, from, now); err != nil {
			return err
		}
		if v == "" {
			v = "none"
		}
		fmt.Fprintf(e.Stdout, "product %d: %s %s from %s\n", p.ID, k, v, from.Format(time.RFC3339))
	}
	return nil
}
