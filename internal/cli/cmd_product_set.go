package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/store"
)

// setBillingOptions records changes of the settings that decide a
// product's billing (store.SettingVCFEdition, store.SettingTanzuMetric),
// each applying from the hour from: the report splits the month there, the
// collector reads it from its next hour. `product set --vcf-edition`,
// `--tanzu-metric`.
func setBillingOptions(ctx context.Context, e *Env, app *appliance.App, id int64, changes map[string]string, from, now time.Time) error {
	p, err := app.Store.Product(ctx, id)
	if err != nil {
		return err
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
