package store

// Admin changes that decide billing take effect from their hour (METERING.md
// "Admin choices take effect from their hour"): a licence key's category, a
// vCenter's VCF edition and Tanzu metric. Each change is recorded in
// admin_changes with the hour it applies from; the report splits a month's
// spans at those hours (applyAdminChanges, called by OpenMonth), so that
// nothing an admin changes rewrites the hours before the change.
//
// The value of a setting in hour H is the new value of the latest change
// with from_hour <= H, else the old value of the earliest change after H,
// else the current value (licenses.category, products.options): hours
// before the first recorded change keep what was in force then.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Settings recorded in admin_changes.
const (
	SettingLicenseCategory = "license_category"
	SettingVCFEdition      = "vcf_edition"
	SettingTanzuMetric     = "tanzu_metric"
)

// AdminChange is one recorded change of a setting.
type AdminChange struct {
	Setting  string
	Subject  string // the licence key, or the product id
	Old, New string
	From     time.Time // the first hour the new value applies to
	MadeAt   time.Time
}

// ErrFutureHour: a change cannot apply from an hour that has not begun.
var ErrFutureHour = errors.New("a change applies from the current hour or an earlier one, not a future hour")

// checkFrom truncates from to its hour and refuses a future hour.
func checkFrom(from, now time.Time) (time.Time, error) {
	from = from.UTC().Truncate(time.Hour)
	if from.After(now) {
		return from, fmt.Errorf("from %s: %w", from.Format(time.RFC3339), ErrFutureHour)
	}
	return from, nil
}

// ChangeLicenseCategory sets the category of key from the hour from (the
// current hour when the admin runs `license set-category`; an earlier hour
// to correct a past month: a new report version then differs only in the
// hours from it on). The change is recorded with its hour; hours before it
// keep the category they had. A key not seen yet is added.
func (s *Store) ChangeLicenseCategory(ctx context.Context, key, category string, from, now time.Time) error {
	if err := validCategory(key, category); err != nil {
		return err
	}
	return s.recordChange(ctx, from, now, func(tx pgx.Tx) (AdminChange, error) {
		var old string
		err := tx.QueryRow(ctx, `SELECT category FROM licenses WHERE license_key = $1 FOR UPDATE`, key).Scan(&old)
		if errors.Is(err, pgx.ErrNoRows) {
			// Not seen yet: its default from the spans (evaluation for an
			// evaluation key), rental otherwise.
			err = tx.QueryRow(ctx, `SELECT coalesce((SELECT `+defaultCategorySQL("dims", "edition")+` FROM usage_spans
				WHERE dims ->> 'license_key' = $1 ORDER BY last_hour DESC LIMIT 1), 'rental')`, key).Scan(&old)
		}
		if err != nil {
			return AdminChange{}, err
		}
		_, err = tx.Exec(ctx, `INSERT INTO licenses (license_key, category) VALUES ($1, $2)
			ON CONFLICT (license_key) DO UPDATE SET category = EXCLUDED.category, updated_at = now()`, key, category)
		return AdminChange{Setting: SettingLicenseCategory, Subject: key, Old: old, New: category}, err
	})
}

// recordChange runs apply in a transaction and records the change it
// returns as applying from the hour of from.
func (s *Store) recordChange(ctx context.Context, from, now time.Time, apply func(pgx.Tx) (AdminChange, error)) error {
	from, err := checkFrom(from, now)
	if err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	c, err := apply(tx)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO admin_changes (setting, subject, old_value, new_value, from_hour, made_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		c.Setting, c.Subject, c.Old, c.New, from, now); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// ChangeProductOption sets option (SettingVCFEdition or SettingTanzuMetric)
// of product id to value from the hour from, recording the change. The
// collector reads the new value from its next hour; the report applies it
// from the hour from. The caller validates value for the product's kind.
func (s *Store) ChangeProductOption(ctx context.Context, id int64, option, value string, from, now time.Time) error {
	if option != SettingVCFEdition && option != SettingTanzuMetric {
		return fmt.Errorf("option %q cannot be changed: want %s or %s", option, SettingVCFEdition, SettingTanzuMetric)
	}
	return s.recordChange(ctx, from, now, func(tx pgx.Tx) (AdminChange, error) {
		var raw string
		err := tx.QueryRow(ctx, `SELECT options FROM products WHERE id = $1 AND removed_at IS NULL FOR UPDATE`, id).Scan(&raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return AdminChange{}, fmt.Errorf("product %d: %w", id, ErrNotFound)
		}
		if err != nil {
			return AdminChange{}, err
		}
		opts := map[string]any{}
		if err := json.Unmarshal([]byte(raw), &opts); err != nil {
			return AdminChange{}, fmt.Errorf("product %d options: %w", id, err)
		}
		old, _ := opts[option].(string)
		opts[option] = value
		if value == "" {
			delete(opts, option)
		}
		b, err := json.Marshal(opts)
		if err != nil {
			return AdminChange{}, err
		}
		_, err = tx.Exec(ctx, `UPDATE products SET options = $2 WHERE id = $1`, id, string(b))
		return AdminChange{Setting: option, Subject: fmt.Sprint(id), Old: old, New: value}, err
	})
}

// AdminChanges lists the changes applying from an hour in [from, to), in
// order.
func (s *Store) AdminChanges(ctx context.Context, from, to time.Time) ([]AdminChange, error) {
	rows, err := s.pool.Query(ctx, `SELECT setting, subject, old_value, new_value, from_hour, made_at FROM admin_changes
		WHERE from_hour >= $1 AND from_hour < $2 ORDER BY from_hour, id`, from, to)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AdminChange, error) {
		var c AdminChange
		err := r.Scan(&c.Setting, &c.Subject, &c.Old, &c.New, &c.From, &c.MadeAt)
		return c, err
	})
}

// defaultCategorySQL is the category of a key nobody categorised, from a
// span's dims and edition: evaluation for vSphere's evaluation licence
// (edition "eval", or marked not reportable by the collector), rental
// otherwise.
func defaultCategorySQL(dims, edition string) string {
	return `CASE WHEN coalesce(` + dims + ` ->> 'not_reportable', '') = 'true' OR ` + dims + ` ->> 'license_edition' = 'eval' OR ` + edition + ` = 'eval'
	        THEN 'evaluation' ELSE 'rental' END`
}

// settingAtSQL is the value of setting for subject in hour h (see the file
// comment), falling back to current.
func settingAtSQL(setting, subject, h, current string) string {
	return `coalesce(
	  (SELECT c.new_value FROM admin_changes c WHERE c.setting = '` + setting + `' AND c.subject = ` + subject + ` AND c.from_hour <= ` + h + ` ORDER BY c.from_hour DESC, c.id DESC LIMIT 1),
	  (SELECT c.old_value FROM admin_changes c WHERE c.setting = '` + setting + `' AND c.subject = ` + subject + ` AND c.from_hour > ` + h + ` ORDER BY c.from_hour, c.id LIMIT 1),
	  ` + current + `)`
}

// Metrics the report gives to usage that VCF includes (metered, not
// reported under its own product): see applyAdminChanges.
const (
	MetricVRAMInVCF = "vm.vram:vcf"
	MetricVSANInVCF = "vsan.used_gb:vcf"
	// EditionSDDCManager is the edition of vm.vram in the hours its
	// vCenter is flagged VCF with the SDDC Manager edition.
	EditionSDDCManager = "vcf-sddc-manager"
)

// excludedCategories are the licence categories whose usage is metered but
// not reported.
const excludedCategories = `('perpetual', 'demo', 'evaluation')`

// applyAdminChanges runs on month_spans before its figures are read:
//
//  1. Spans are split at every change hour of their licence key or their
//     product that falls inside them.
//  2. A licence key with recorded changes gets, per piece, the category in
//     force in its hours (and its reportability from it).
//  3. The VCF edition of a vCenter in force in each piece's hours decides
//     (METERING.md "What VCF includes"): with a core edition (standard,
//     advanced, enterprise, with or without vSAN) the VMs' vRAM is
//     included in VCF (metric vm.vram:vcf); with a "-vsan" edition the
//     vSAN capacity too (vsan.used_gb:vcf); with sddc-manager the vRAM is
//     billed under Cloud Foundation (edition vcf-sddc-manager).
func applyAdminChanges(ctx context.Context, tx pgx.Tx, m Month) error {
	steps := []string{
		`CREATE TEMP TABLE month_cuts ON COMMIT DROP AS
		 SELECT DISTINCT setting, subject, from_hour AS h FROM admin_changes
		  WHERE setting IN ('license_category', 'vcf_edition') AND from_hour > $1 AND from_hour < $2`,
	}
	// Without a cut in the month no span is split (the split reads every
	// span of the month to find none).
	split := []string{
		// Each span with a cut inside it, and the first hour of each piece.
		`CREATE TEMP TABLE month_pieces ON COMMIT DROP AS
		 WITH cut AS (
		   SELECT ms.ctid AS rid, c.h FROM month_spans ms
		     JOIN month_cuts c ON ((c.setting = 'license_category' AND c.subject = ms.license_key)
		                        OR (c.setting = 'vcf_edition' AND c.subject = ms.product_id::text))
		    WHERE c.h > ms.h0 AND c.h <= ms.h1
		 ), starts AS (
		   SELECT rid, h FROM cut
		   UNION SELECT ms.ctid, ms.h0 FROM month_spans ms WHERE ms.ctid IN (SELECT rid FROM cut)
		 )
		 SELECT rid, h AS p0, lead(h) OVER (PARTITION BY rid ORDER BY h) - interval '1 hour' AS p1 FROM starts`,
		`CREATE TEMP TABLE month_split ON COMMIT DROP AS
		 SELECT ms.*, p.p0, p.p1 FROM month_spans ms JOIN month_pieces p ON p.rid = ms.ctid`,
		`UPDATE month_split SET h0 = p0, h1 = coalesce(p1, h1),
		        hours = date_part('epoch', coalesce(p1, h1) - p0) / 3600 + 1`,
		`ALTER TABLE month_split DROP COLUMN p0, DROP COLUMN p1`,
		`DELETE FROM month_spans WHERE ctid IN (SELECT rid FROM month_pieces)`,
		`INSERT INTO month_spans SELECT * FROM month_split`,
	}
	rest := []string{
		// Categories in force per piece, for keys with recorded changes.
		`UPDATE month_spans ms SET category = ` + settingAtSQL(SettingLicenseCategory, "ms.license_key", "ms.h0", "ms.category") + `
		  WHERE ms.license_key IN (SELECT subject FROM admin_changes WHERE setting = 'license_category')`,
		`UPDATE month_spans SET reportable = category NOT IN ` + excludedCategories + `
		  WHERE license_key IN (SELECT subject FROM admin_changes WHERE setting = 'license_category')`,
		// The VCF edition in force per piece, for vCenters flagged VCF now
		// or at some time.
		`CREATE TEMP TABLE month_vcf ON COMMIT DROP AS
		 SELECT ms.ctid AS rid, ` + settingAtSQL(SettingVCFEdition, "p.id::text", "ms.h0", "coalesce(p.options ->> 'vcf_edition', '')") + ` AS vcf
		   FROM month_spans ms JOIN products p ON p.id = ms.product_id
		  WHERE p.kind = 'vcenter' AND ms.metric IN ('vm.vram', 'vsan.used_gb')
		    AND (coalesce(p.options ->> 'vcf_edition', '') <> ''
		         OR EXISTS (SELECT 1 FROM admin_changes c WHERE c.setting = 'vcf_edition' AND c.subject = p.id::text))`,
		`UPDATE month_spans ms SET metric = '` + MetricVRAMInVCF + `' FROM month_vcf v
		  WHERE ms.ctid = v.rid AND ms.metric = 'vm.vram' AND v.vcf NOT IN ('', 'sddc-manager')`,
		`UPDATE month_spans ms SET edition = '` + EditionSDDCManager + `' FROM month_vcf v
		  WHERE ms.ctid = v.rid AND ms.metric = 'vm.vram' AND v.vcf = 'sddc-manager'`,
		`UPDATE month_spans ms SET metric = '` + MetricVSANInVCF + `' FROM month_vcf v
		  WHERE ms.ctid = v.rid AND ms.metric = 'vsan.used_gb' AND v.vcf LIKE '%-vsan'`,
	}
	run := func(steps []string) error {
		for _, sql := range steps {
			if _, err := tx.Exec(ctx, sql, []any{m.Start, m.End}[:maxParam(sql)]...); err != nil {
				return fmt.Errorf("applying admin changes to %s: %w", m, err)
			}
		}
		return nil
	}
	if err := run(steps); err != nil {
		return err
	}
	var cuts bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM month_cuts)`).Scan(&cuts); err != nil {
		return fmt.Errorf("applying admin changes to %s: %w", m, err)
	}
	if cuts {
		if err := run(split); err != nil {
			return err
		}
	}
	return run(rest)
}

// maxParam is the highest parameter ($n) sql uses, 0 when none.
func maxParam(sql string) int {
	n := 0
	for i := 0; i+1 < len(sql); i++ {
		if sql[i] != '$' {
			continue
		}
		k := 0
		for j := i + 1; j < len(sql) && sql[j] >= '0' && sql[j] <= '9'; j++ {
			k = k*10 + int(sql[j]-'0')
		}
		n = max(n, k)
	}
	return n
}
