package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/store"
)

// setBillingOptions records changes of the settings that decide a
// product's billing (store.SettingVCFEdition, store.SettingTanzuMetric),
// each applying from the hour from: the report splits the month there, the
// collector reads it from its next hour. `product set --vcf-edition`,
// `--tanzu-metric`.
func setBillingOptions(ctx context.Context, e *Env, app *appliance.App, id int64, changes map[string]string, from, now time.Time) error {
	if err := appliance.SetBillingOptions(ctx, app, id, changes, from, now); err != nil {
		return err
	}
	for _, k := range []string{store.SettingVCFEdition, store.SettingTanzuMetric} {
		v, ok := changes[k]
		if !ok {
			continue
		}
		if v == "" {
			v = "none"
		}
		fmt.Fprintf(e.Stdout, "product %d: %s %s from %s\n", id, k, v, from.Format(time.RFC3339))
	}
	return nil
}
