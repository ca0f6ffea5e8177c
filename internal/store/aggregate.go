package store

// Monthly aggregation over usage spans (METERING.md, DESIGN.md "Reports").
//
// OpenMonth selects once, into a table month_spans of its transaction (see
// monthSchema), the spans overlapping the month [Start, End), clipped to
// it, each with the number of its hours inside the month, its customer label (customer rules, see
// customers.go), whether it is reportable, and the ids of its state and
// names (month_states, month_names: see monthSQL). Every figure is then one
// short query over month_spans, one per aggregation kind. A figure's
// Objects are counted per object id within its group (a per-object hash
// aggregate, then a count), which is the count of distinct object keys:
// an object is one (product, metric, object key).
//
// A span with a licence key (dims license_key) is not reportable when the
// key's category is perpetual, demo or evaluation (licenses table; a key
// nobody categorised is evaluation when the collector saw vSphere's
// evaluation licence, rental otherwise); a span without one when its dims
// say not_reportable = "true". Such usage is metered and counted in the
// manifest, but not billed. Admin changes (categories, VCF editions) then
// apply from their hour: see changes.go.
//
// The month is given as two instants; hours in month is End-Start in hours,
// computed by the caller in the report's time zone (672 to 744, 743 or 745
// across a daylight-saving change). Collection hours are UTC instants, so
// the overlap of a span [first_hour, last_hour] with the month is
//
//	hours = (least(last_hour, End - 1h) - greatest(first_hour, Start)) / 1h + 1
//
// The SQL does the work; Go receives one row per figure, or streams the
// history files row by row.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usagemeter/usagemeter/collectors"
)

// Month is a report month: the instants [Start, End) in the report's time zone.
type Month struct {
	Start, End time.Time
}

// MonthIn returns the month of t in loc (t's year and month as seen in loc).
func MonthIn(t time.Time, loc *time.Location) Month {
	t = t.In(loc)
	start := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, loc)
	return Month{Start: start, End: start.AddDate(0, 1, 0)}
}

// Hours is the number of hours in the month.
func (m Month) Hours() int { return int(m.End.Sub(m.Start) / time.Hour) }

// String is YYYY-MM.
func (m Month) String() string { return m.Start.Format("2006-01") }

// Figure is one aggregated figure: a metric of a product instance for an
// edition and a customer, split by reportability.
type Figure struct {
	ProductID  int64
	Metric     string
	Edition    string
	Customer   string // "" when no customer rule matches
	Reportable bool
	Unit       string  // unit of Value
	Value      float64 // the monthly figure (average, count, maximum or unique count)
	Objects    int64   // distinct objects behind the figure
	Hours      float64 // object-hours behind the figure
}

// monthSQL fills, in order, the temporary tables of a month: $1 month
// start, $2 month end (exclusive), $3 metrics. They read the tables of
// migration 005, not the usage_spans view, and the dims of each state and
// name once, however many spans share them:
//
//   - month_states: the states (span_states: unit, edition, the dims of
//     the host and product), with what they decide: reportability and
//     licence category, and the customer labels of their host, cluster,
//     Cloud Director, datacenter and vCenter;
//   - month_paths: the label of each folder and resource pool path the
//     names hold (customerLabels);
//   - month_names: the names (span_names: the object's own dims), with the
//     label of their org, folder or resource pool (all states and names:
//     those of the spans kept, as Retain deletes the others; finding the
//     month's would take a pass over its spans);
//   - month_spans: the month's spans of metrics, clipped, by object, state
//     and names id, with their customer (customerExpr, which also applies
//     the rules scoped to the span's vCenter) and the keys the joins to
//     the vCenter's vRAM use.
//
// The dims keys of states and names are disjoint (span_place_keys), so a
// span's dims are the union of both, as in the view.
var monthSQL = []string{`
CREATE TEMP TABLE month_states ON COMMIT DROP AS
SELECT st.id, st.unit, st.edition,
       CASE WHEN coalesce(st.dims ->> 'license_key', '') = '' THEN coalesce(st.dims ->> 'not_reportable', '') <> 'true'
            ELSE coalesce(l.category, ` + defaultCategorySQL("st.dims", "st.edition") + `) NOT IN ` + excludedCategories + ` END AS reportable,
       coalesce(st.dims ->> 'license_key', '') AS license_key,
       coalesce(l.category, ` + defaultCategorySQL("st.dims", "st.edition") + `) AS category,
       st.dims ->> 'host' AS host, st.dims ->> 'cluster' AS cluster, st.dims ->> 'datacenter' AS datacenter,
       st.dims ->> 'vcenter' AS vcenter, st.dims ->> 'vcd' AS vcd,
       st.dims ? 'vcenter_uuid' AS has_vcenter_uuid, st.dims ->> 'vcenter_uuid' AS vcenter_uuid,
       ` + stateLabels + `
  FROM span_states st
  LEFT JOIN licenses l ON l.license_key = st.dims ->> 'license_key'` + stateLabelJoins, `
CREATE TEMP TABLE month_paths ON COMMIT DROP AS` + customerLabels, `
CREATE TEMP TABLE month_names ON COMMIT DROP AS
SELECT n.id, n.vm, n.folder, n.resource_pool, n.org, n.has_moref, n.vm_moref,
       CASE WHEN n.vram_mb ~ '^[0-9]+(\.[0-9]*)?$' THEN n.vram_mb::float8 END AS vram_mb,
       ` + namesLabel + ` AS label
  FROM (` + namesColumns + `) n` + namesLabelJoins,
	`SET LOCAL default_statistics_target = 10`, // a sample of 3,000 rows: the plans need sizes, not histograms
	`ANALYZE month_states, month_names`, `
CREATE TEMP TABLE month_spans ON COMMIT DROP AS
SELECT o.product_id, o.metric, s.object_id, o.object_key, s.quantity, st.unit, st.edition,
       greatest(s.first_hour, $1::timestamptz) AS h0,
       least(s.last_hour, $2::timestamptz - interval '1 hour') AS h1,
       date_part('epoch', least(s.last_hour, $2::timestamptz - interval '1 hour') - greatest(s.first_hour, $1::timestamptz)) / 3600 + 1 AS hours,
       st.reportable, st.license_key, st.category,
       ` + customerExpr + ` AS customer,
       s.state_id, s.names_id,
       nullif(split_part(o.object_key, '/vm/', 2), '') AS vm_uuid,
       CASE WHEN st.has_vcenter_uuid AND nm.has_moref THEN st.vcenter_uuid || '/' || nm.vm_moref
            WHEN o.metric = 'vm.vram' AND nm.has_moref THEN split_part(o.object_key, '/vm/', 1) || '/' || nm.vm_moref END AS vc_moref,
       nm.vram_mb,
       CASE WHEN o.metric = 'vm.vram' AND coalesce(nm.vm_moref, '') <> ''
            THEN lower(split_part(o.object_key, '/', 1)) || '/moref/' || nm.vm_moref END AS moref_key
  FROM (SELECT object_id, first_hour, last_hour, quantity, state_id, names_id FROM spans
         WHERE first_hour < $2::timestamptz AND last_hour >= $1::timestamptz
        UNION ALL
        SELECT id, first_hour, last_hour, quantity, state_id, names_id FROM span_objects
         WHERE first_hour < $2::timestamptz AND last_hour >= $1::timestamptz) s
  JOIN span_objects o ON o.id = s.object_id
  JOIN month_states st ON st.id = s.state_id
  JOIN month_names nm ON nm.id = s.names_id` + scopedLabelJoins + `
 WHERE o.metric = ANY($3::text[])`}

// monthSQLUnscoped is monthSQL when no customer rule is scoped to a vCenter.
var monthSQLUnscoped = append(monthSQL[:len(monthSQL)-1:len(monthSQL)-1],
	strings.Replace(monthSQL[len(monthSQL)-1], scopedLabelJoins, unscopedLabels, 1))

// MonthData is a month's spans selected, clipped and labelled once (see the
// file comment), on one connection, in a repeatable-read transaction that
// sees one snapshot: every figure and file of a report agrees with the
// others.
// Close it when done.
type MonthData struct {
	tx      pgx.Tx
	m       Month
	metrics map[string]bool     // the metrics of month_spans
	states  map[int32]stateName // stateNames, once read
}

// OpenMonth selects the month's spans of metrics into month_spans.
func (s *Store) OpenMonth(ctx context.Context, m Month, metrics []string) (*MonthData, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return nil, err
	}
	private, err := monthSchema(ctx, tx)
	if err != nil {
		tx.Rollback(ctx)
		return nil, err
	}
	// Sorting and grouping a month of a large provider fits in memory
	// (the history of 200,000 VMs, 500,000 spans, sorts in about 110 MB
	// rather than spilling to disk). The queries are short but
	// their estimates large (the temporary tables): compiling them (JIT)
	// would take longer than running them.
	if _, err := tx.Exec(ctx, `SET LOCAL work_mem = '256MB'; SET LOCAL jit = off`); err != nil {
		tx.Rollback(ctx)
		return nil, err
	}
	var scoped bool
	if err := tx.QueryRow(ctx, anyScopedRuleSQL).Scan(&scoped); err != nil {
		tx.Rollback(ctx)
		return nil, err
	}
	steps := monthSQLUnscoped
	if scoped {
		steps = monthSQL
	}
	args := []any{m.Start, m.End, metrics}
	for _, sql := range steps {
		if private {
			sql = unlogged(sql)
		}
		if _, err := tx.Exec(ctx, sql, args[:maxParam(sql)]...); err != nil {
			tx.Rollback(ctx)
			return nil, fmt.Errorf("selecting the spans of %s: %w", m, err)
		}
	}
	if err := applyAdminChanges(ctx, tx, m); err != nil {
		tx.Rollback(ctx)
		return nil, err
	}
	if _, err := tx.Exec(ctx, `ANALYZE month_spans`); err != nil {
		tx.Rollback(ctx)
		return nil, err
	}
	d := &MonthData{tx: tx, m: m, metrics: map[string]bool{}}
	var present []string
	if err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(DISTINCT metric), '{}') FROM month_spans`).Scan(&present); err != nil {
		tx.Rollback(ctx)
		return nil, err
	}
	for _, metric := range present {
		d.metrics[metric] = true
	}
	return d, nil
}

// monthSchema puts the month's tables in a schema of the transaction's
// own, usagemeter_month_<backend pid> (first in its search_path), as
// unlogged tables (unlogged), rather than temporary ones: PostgreSQL reads
// a temporary table in its backend alone, and these in parallel workers
// too (a month's joins and sorts on several cores). Neither is ever
// committed: Close's rollback drops schema and tables, as a crash or a
// lost connection does, and two builds at once (backends) never share a
// name. A role that may not create schemas in the database gets the
// temporary tables (private false).
func monthSchema(ctx context.Context, tx pgx.Tx) (private bool, err error) {
	if _, err := tx.Exec(ctx, `SAVEPOINT month_schema`); err != nil {
		return false, err
	}
	_, err = tx.Exec(ctx, `
	DO $$ BEGIN
		EXECUTE format('CREATE SCHEMA usagemeter_month_%s', pg_backend_pid());
		PERFORM set_config('search_path', format('usagemeter_month_%s, %s', pg_backend_pid(), current_setting('search_path')), true);
	END $$`)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
		_, err = tx.Exec(ctx, `ROLLBACK TO SAVEPOINT month_schema`)
		return false, err
	}
	if err != nil {
		return false, fmt.Errorf("creating the month's schema: %w", err)
	}
	// Parallel plans for the month's large joins and sorts: their rows are
	// few and wide next to what a worker costs to start.
	_, err = tx.Exec(ctx, `SET LOCAL parallel_setup_cost = 100; SET LOCAL parallel_tuple_cost = 0.01`)
	return err == nil, err
}

// unlogged is a step of monthSQL creating an unlogged table where it
// creates a temporary one.
func unlogged(sql string) string {
	return strings.ReplaceAll(strings.ReplaceAll(sql, "CREATE TEMP TABLE", "CREATE UNLOGGED TABLE"), " ON COMMIT DROP", "")
}

// present is the metrics of metrics that the month has spans of: a query
// over the others would read month_spans to find nothing.
func (d *MonthData) present(metrics []string) []string {
	var out []string
	for _, m := range metrics {
		if d.metrics[m] {
			out = append(out, m)
		}
	}
	return out
}

// Close ends the transaction (month_spans is dropped with it).
func (d *MonthData) Close(ctx context.Context) { _ = d.tx.Rollback(ctx) }

// withMonth runs fn on a MonthData of its own (the Store shortcuts below).
func (s *Store) withMonth(ctx context.Context, m Month, metrics []string, fn func(*MonthData) error) error {
	d, err := s.OpenMonth(ctx, m, metrics)
	if err != nil {
		return err
	}
	defer d.Close(ctx)
	return fn(d)
}

func (d *MonthData) figures(ctx context.Context, what string, metrics []string, sql string, args ...any) ([]Figure, error) {
	if metrics = d.present(metrics); len(metrics) == 0 {
		return nil, nil
	}
	rows, err := d.tx.Query(ctx, sql, append([]any{metrics}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("%s %v over %s: %w", what, metrics, d.m, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Figure, error) {
		var f Figure
		err := r.Scan(&f.ProductID, &f.Metric, &f.Edition, &f.Customer, &f.Reportable, &f.Unit, &f.Value, &f.Objects, &f.Hours)
		return f, err
	})
}

// AverageFigures: the monthly average of an hourly quantity (METERING.md
// "Monthly average"): sum(quantity x hours) / hours in month. Quantities in
// MB are reported in GB (/ 1024): average capped billed vRAM (GB) =
// sum(capped_billed_mb over VM-hours) / 1024 / hours in month. Cores and GB
// are averaged as they are. Missing hours lower the average (assumed rule).
func (d *MonthData) AverageFigures(ctx context.Context, metrics []string) ([]Figure, error) {
	return d.figures(ctx, "averaging", metrics, `
	SELECT product_id, metric, edition, customer, reportable,
	       CASE unit WHEN 'MB' THEN 'GB' ELSE unit END,
	       sum(qh) / CASE unit WHEN 'MB' THEN 1024 ELSE 1 END / $2::float8,
	       count(*), sum(h)
	  FROM (SELECT product_id, metric, edition, customer, reportable, unit, sum(quantity * hours) AS qh, sum(hours) AS h
	          FROM month_spans
	         WHERE metric = ANY($1::text[])
	         GROUP BY product_id, metric, edition, customer, reportable, unit, object_id) o
	 GROUP BY product_id, metric, edition, customer, reportable, unit
	 ORDER BY product_id, metric, edition, customer, reportable`, float64(d.m.Hours()))
}

// DimVRAMFigures: the average capped billed vRAM of objects counted by
// another metric that carry it in their dims as vram_mb (Cloud Director's
// vm.managed): sum(vram_mb x hours) / 1024 / hours in month, in GB.
func (d *MonthData) DimVRAMFigures(ctx context.Context, metrics []string) ([]Figure, error) {
	return d.figures(ctx, "averaging the vRAM of", metrics, `
	SELECT product_id, metric, edition, customer, reportable, 'GB',
	       sum(qh) / 1024 / $2::float8,
	       count(*), sum(h)
	  FROM (SELECT product_id, metric, edition, customer, reportable, sum(vram_mb * hours) AS qh, sum(hours) AS h
	          FROM month_spans
	         WHERE metric = ANY($1::text[]) AND vram_mb IS NOT NULL
	         GROUP BY product_id, metric, edition, customer, reportable, object_id) o
	 GROUP BY product_id, metric, edition, customer, reportable
	 ORDER BY product_id, metric, edition, customer, reportable`, float64(d.m.Hours()))
}

// JoinedVRAMFigures: the average capped billed vRAM of VMs counted by a
// presence metric (NSX's nsx.vm: a VM reached by NSX features, quantity 1;
// Aria's vm.monitored), joined hour by hour to the vm.vram span of the same
// VM: by its instanceUuid in whichever registered vCenter holds it (an
// NSX-T Manager may serve several vCenters; its key names its paired one),
// or, for a presence key "<vCenter instanceUuid>/moref/<MoRef>" (products
// that know a VM by its MoRef), the vm.vram whose vm_moref dim is that
// MoRef (moref_key; vm.vram spans stored before the vCenter collector wrote
// that dim do not join such keys): sum over the hours in which
// both exist of vm.vram / 1024 / hours in month, in GB. The figure keeps the
// presence metric's product, edition and reportability; its customer is
// the vCenter span's (which carries the VM's placement).
func (d *MonthData) JoinedVRAMFigures(ctx context.Context, metrics []string) ([]Figure, error) {
	return d.joined(ctx, metrics, `'GB', sum(v.quantity * j.hours) / 1024 / $2::float8`)
}

// JoinedCountFigures: the non-unique count of VMs counted by a presence
// metric in the hours the vCenter bills them (vm.vram exists): sum of those
// hours / hours in month, with the customer of the vCenter span as above.
func (d *MonthData) JoinedCountFigures(ctx context.Context, metrics []string) ([]Figure, error) {
	return d.joined(ctx, metrics, `'count', sum(j.hours) / $2::float8`)
}

func (d *MonthData) joined(ctx context.Context, metrics []string, unitAndValue string) ([]Figure, error) {
	return d.figures(ctx, "joining to the vCenter", metrics, `
	SELECT n.product_id, n.metric, n.edition, v.customer, n.reportable, `+unitAndValue+`,
	       count(DISTINCT n.object_key), sum(j.hours)
	  FROM month_spans n
	  JOIN (SELECT vm_uuid AS k, customer, quantity, h0, h1 FROM month_spans WHERE metric IN ('vm.vram', '`+MetricVRAMInVCF+`') AND vm_uuid IS NOT NULL
	        UNION ALL -- instance UUIDs and MoRef keys (/moref/) never meet: no VM-hour joins twice
	        SELECT moref_key, customer, quantity, h0, h1 FROM month_spans WHERE metric IN ('vm.vram', '`+MetricVRAMInVCF+`') AND moref_key IS NOT NULL) v
	    ON v.k = coalesce(n.vm_uuid, n.object_key) AND v.h0 <= n.h1 AND v.h1 >= n.h0
	 CROSS JOIN LATERAL (SELECT date_part('epoch', least(n.h1, v.h1) - greatest(n.h0, v.h0)) / 3600 + 1 AS hours) j
	 WHERE n.metric = ANY($1::text[])
	 GROUP BY n.product_id, n.metric, n.edition, v.customer, n.reportable
	 ORDER BY 1, 2, 3, 4, 5`, float64(d.m.Hours()))
}

// CountFigures: the non-unique object count (METERING.md "Non-unique VM
// count"): the objects present in each hour, summed over the month and
// divided by hours in month. A VM present all month counts 1.
func (d *MonthData) CountFigures(ctx context.Context, metrics []string) ([]Figure, error) {
	return d.figures(ctx, "counting", metrics, `
	SELECT product_id, metric, edition, customer, reportable, 'count',
	       sum(h) / $2::float8,
	       count(*), sum(h)
	  FROM (SELECT product_id, metric, edition, customer, reportable, sum(hours) AS h
	          FROM month_spans
	         WHERE metric = ANY($1::text[])
	         GROUP BY product_id, metric, edition, customer, reportable, object_id) o
	 GROUP BY product_id, metric, edition, customer, reportable
	 ORDER BY product_id, metric, edition, customer, reportable`, float64(d.m.Hours()))
}

// MaximumFigures: the monthly maximum (METERING.md "Monthly maximum"): the
// largest hourly total of the group in the month. The hourly total only
// changes where a span starts or ends, so it is a running sum over those
// events (+quantity at h0, -quantity after h1), and its maximum is the
// maximum over the event hours.
func (d *MonthData) MaximumFigures(ctx context.Context, metrics []string) ([]Figure, error) {
	return d.figures(ctx, "maximum of", metrics, `
	WITH ev AS (
		SELECT product_id, metric, edition, customer, reportable, unit, e.h, e.dq
		  FROM month_spans CROSS JOIN LATERAL (VALUES (h0, quantity), (h1 + interval '1 hour', -quantity)) AS e(h, dq)
		 WHERE metric = ANY($1::text[])
	), at_hour AS (
		SELECT product_id, metric, edition, customer, reportable, unit, h,
		       sum(sum(dq)) OVER (PARTITION BY product_id, metric, edition, customer, reportable, unit ORDER BY h) AS total
		  FROM ev
		 GROUP BY product_id, metric, edition, customer, reportable, unit, h
	), objs AS (
		SELECT product_id, metric, edition, customer, reportable, unit, count(*) AS objects, sum(h) AS hours
		  FROM (SELECT product_id, metric, edition, customer, reportable, unit, sum(hours) AS h
		          FROM month_spans WHERE metric = ANY($1::text[])
		         GROUP BY product_id, metric, edition, customer, reportable, unit, object_id) o
		 GROUP BY product_id, metric, edition, customer, reportable, unit
	)
	SELECT a.product_id, a.metric, a.edition, a.customer, a.reportable, a.unit,
	       max(round(a.total::numeric, 6))::float8, o.objects, o.hours
	  FROM at_hour a
	  JOIN objs o USING (product_id, metric, edition, customer, reportable, unit)
	 GROUP BY a.product_id, a.metric, a.edition, a.customer, a.reportable, a.unit, o.objects, o.hours
	 ORDER BY 1, 2, 3, 4, 5`)
}

// UniqueFigures: the unique count (METERING.md "Unique count"): the distinct
// objects seen at least once in the month. An object whose spans fall under
// two customers (it moved) counts once for each.
func (d *MonthData) UniqueFigures(ctx context.Context, metrics []string) ([]Figure, error) {
	return d.figures(ctx, "unique count of", metrics, `
	SELECT product_id, metric, edition, customer, reportable, 'count',
	       count(*)::float8,
	       count(*), sum(h)
	  FROM (SELECT product_id, metric, edition, customer, reportable, sum(hours) AS h
	          FROM month_spans
	         WHERE metric = ANY($1::text[])
	         GROUP BY product_id, metric, edition, customer, reportable, object_id) o
	 GROUP BY product_id, metric, edition, customer, reportable
	 ORDER BY product_id, metric, edition, customer, reportable`)
}

// HourlyTotals streams, for every (product, metric, edition) with reportable
// usage in the month, one row per hour of the month, in order: running sums
// over span start and end events, filled onto the month's hours.
func (d *MonthData) HourlyTotals(ctx context.Context, metrics []string, fn func(HourlyTotal) error) error {
	if metrics = d.present(metrics); len(metrics) == 0 {
		return nil
	}
	rows, err := d.tx.Query(ctx, `
	WITH ev AS (
		SELECT product_id, metric, edition, unit, e.h, e.dq, e.dn
		  FROM month_spans CROSS JOIN LATERAL (VALUES (h0, quantity, 1), (h1 + interval '1 hour', -quantity, -1)) AS e(h, dq, dn)
		 WHERE metric = ANY($3::text[]) AND reportable AND e.h < $2::timestamptz
	), d AS (
		SELECT product_id, metric, edition, unit, h, sum(dq) AS dq, sum(dn) AS dn FROM ev GROUP BY 1, 2, 3, 4, 5
	), g AS (
		SELECT DISTINCT product_id, metric, edition, unit FROM d
	), grid AS (
		SELECT g.product_id, g.metric, g.edition, g.unit, h.h
		  FROM g CROSS JOIN generate_series($1::timestamptz, $2::timestamptz - interval '1 hour', interval '1 hour') AS h(h)
	)
	SELECT grid.product_id, grid.metric, grid.edition, grid.unit, grid.h,
	       round((sum(coalesce(d.dq, 0)) OVER w)::numeric, 6)::float8,
	       (sum(coalesce(d.dn, 0)) OVER w)::int8,
	       r.hour IS NOT NULL
	  FROM grid
	  LEFT JOIN d USING (product_id, metric, edition, unit, h)
	  LEFT JOIN collection_runs r ON r.product_id = grid.product_id AND r.hour = grid.h AND r.state = 'done'
	WINDOW w AS (PARTITION BY grid.product_id, grid.metric, grid.edition, grid.unit ORDER BY grid.h)
	 ORDER BY grid.product_id, grid.metric, grid.edition, grid.unit, grid.h`, d.m.Start, d.m.End, metrics)
	if err != nil {
		return fmt.Errorf("hourly totals of %s: %w", d.m, err)
	}
	defer rows.Close()
	var t HourlyTotal
	for rows.Next() {
		if err := rows.Scan(&t.ProductID, &t.Metric, &t.Edition, &t.Unit, &t.Hour, &t.Quantity, &t.Objects, &t.Collected); err != nil {
			return err
		}
		if err := fn(t); err != nil {
			return err
		}
	}
	return rows.Err()
}

// History streams the month's spans of metrics, clipped to the month, in
// (product, metric, object, first hour) order, with the names of their
// states and names. The names of states (a host's, its cluster's...) are
// few and repeat over many spans: they are read once (stateNames) rather
// than sorted and sent with every span.
func (d *MonthData) History(ctx context.Context, metrics []string, fn func(*HistoryRow) error) error {
	if metrics = d.present(metrics); len(metrics) == 0 {
		return nil
	}
	states, err := d.stateNames(ctx)
	if err != nil {
		return fmt.Errorf("history of %s: %w", d.m, err)
	}
	rows, err := d.tx.Query(ctx, `
	SELECT ms.product_id, ms.metric, ms.object_key, ms.edition, ms.customer, ms.reportable, ms.h0, ms.h1, ms.hours, ms.quantity, ms.unit,
	       ms.state_id, coalesce(nm.vm, ''), coalesce(nm.folder, ''), coalesce(nm.resource_pool, ''), coalesce(nm.org, '')
	  FROM month_spans ms
	  JOIN month_names nm ON nm.id = ms.names_id
	 WHERE ms.metric = ANY($1::text[])
	 ORDER BY ms.product_id, ms.metric, ms.object_key COLLATE "C", ms.h0`, metrics)
	if err != nil {
		return fmt.Errorf("history of %s: %w", d.m, err)
	}
	// The rows are decoded in a goroutine of their own, in batches, while
	// fn formats the batch before (the month's largest file on two
	// cores). rows is the reader's until it has ended.
	type batch struct {
		rows []HistoryRow
		err  error // the reader's, with its last batch
	}
	const batchRows = 512
	batches := make(chan batch, 4)
	free := make(chan []HistoryRow, 6)
	stop := make(chan struct{})
	go func() {
		defer close(batches)
		for {
			var b []HistoryRow
			select {
			case b = <-free:
			default:
				b = make([]HistoryRow, batchRows)
			}
			n := 0
			var err error
			for n < batchRows && rows.Next() {
				h := &b[n]
				if err = rows.Scan(&h.ProductID, &h.Metric, &h.ObjectKey, &h.Edition, &h.Customer, &h.Reportable, &h.First, &h.Last, &h.Hours, &h.Quantity, &h.Unit,
					&h.State, &h.VM, &h.Folder, &h.ResourcePool, &h.Org); err != nil {
					break
				}
				st := states[h.State]
				h.Host, h.Cluster, h.Datacenter, h.VCenter, h.VCD = st.host, st.cluster, st.datacenter, st.vcenter, st.vcd
				n++
			}
			last := err != nil || n < batchRows
			if last && err == nil {
				err = rows.Err()
			}
			select {
			case batches <- batch{rows: b[:n], err: err}:
			case <-stop:
				return
			}
			if last {
				return
			}
		}
	}()
	defer rows.Close()
	for b := range batches {
		for i := 0; i < len(b.rows) && err == nil; i++ {
			err = fn(&b.rows[i])
		}
		if err == nil {
			err = b.err
		}
		if err != nil {
			close(stop)
			for range batches { // the reader has ended when it is closed
			}
			return err
		}
		select {
		case free <- b.rows[:cap(b.rows)]:
		default:
		}
	}
	return nil
}

// stateName are the names a state gives its spans.
type stateName struct{ host, cluster, datacenter, vcenter, vcd string }

// stateNames reads the names of month_states, once.
func (d *MonthData) stateNames(ctx context.Context) (map[int32]stateName, error) {
	if d.states != nil {
		return d.states, nil
	}
	rows, err := d.tx.Query(ctx, `SELECT id, coalesce(host, ''), coalesce(cluster, ''), coalesce(datacenter, ''), coalesce(vcenter, ''), coalesce(vcd, '') FROM month_states`)
	if err != nil {
		return nil, err
	}
	states := map[int32]stateName{}
	var id int32
	var n stateName
	if _, err := pgx.ForEachRow(rows, []any{&id, &n.host, &n.cluster, &n.datacenter, &n.vcenter, &n.vcd}, func() error { states[id] = n; return nil }); err != nil {
		return nil, err
	}
	d.states = states
	return states, nil
}

// Spans counts the month's spans of metrics (to size the history files).
func (d *MonthData) Spans(ctx context.Context, metrics []string) (int, error) {
	var n int
	err := d.tx.QueryRow(ctx, `SELECT count(*) FROM month_spans WHERE metric = ANY($1::text[])`, metrics).Scan(&n)
	return n, err
}

// Shortcuts that open the month for one query (tests, one-off figures).

// AverageFigures opens m for metrics and returns MonthData.AverageFigures.
func (s *Store) AverageFigures(ctx context.Context, m Month, metrics []string) (f []Figure, err error) {
	err = s.withMonth(ctx, m, metrics, func(d *MonthData) error { f, err = d.AverageFigures(ctx, metrics); return err })
	return f, err
}

// CountFigures opens m for metrics and returns MonthData.CountFigures.
func (s *Store) CountFigures(ctx context.Context, m Month, metrics []string) (f []Figure, err error) {
	err = s.withMonth(ctx, m, metrics, func(d *MonthData) error { f, err = d.CountFigures(ctx, metrics); return err })
	return f, err
}

// MaximumFigures opens m for metrics and returns MonthData.MaximumFigures.
func (s *Store) MaximumFigures(ctx context.Context, m Month, metrics []string) (f []Figure, err error) {
	err = s.withMonth(ctx, m, metrics, func(d *MonthData) error { f, err = d.MaximumFigures(ctx, metrics); return err })
	return f, err
}

// UniqueFigures opens m for metrics and returns MonthData.UniqueFigures.
func (s *Store) UniqueFigures(ctx context.Context, m Month, metrics []string) (f []Figure, err error) {
	err = s.withMonth(ctx, m, metrics, func(d *MonthData) error { f, err = d.UniqueFigures(ctx, metrics); return err })
	return f, err
}

// HourlyTotals opens m for metrics and streams MonthData.HourlyTotals.
func (s *Store) HourlyTotals(ctx context.Context, m Month, metrics []string, fn func(HourlyTotal) error) error {
	return s.withMonth(ctx, m, metrics, func(d *MonthData) error { return d.HourlyTotals(ctx, metrics, fn) })
}

// History opens m for metrics and streams MonthData.History.
func (s *Store) History(ctx context.Context, m Month, metrics []string, fn func(*HistoryRow) error) error {
	return s.withMonth(ctx, m, metrics, func(d *MonthData) error { return d.History(ctx, metrics, fn) })
}

// ProductGap is the collection record of one product over a month.
type ProductGap struct {
	ProductID int64
	Expected  int // hours of the month in which the product was registered and active
	Collected int // of those, hours with a done collection run
	Missing   int // Expected - Collected
	Failed    int // of the missing hours, those with a failed run: a gap whose cause is recorded (collection_runs.error)
}

// MonthGaps counts, per product, the hours of the month with no done
// collection run. A product is expected from the earlier of its creation and
// its first run, until its deactivation or its removal (the hours that began
// before it was removed), and never after now (runs in the future cannot
// exist yet): a product added or removed mid-month expects only the hours
// it existed. Failed counts the missing hours whose cause is
// recorded: failed collections, and hours that ended uncollected (the
// scheduler records those as failed runs naming why). A product whose kind
// is collected less often than hourly (collectors.Kind.Every, Horizon DaaS
// every 6 hours) is expected only in its due UTC hours.
func (s *Store) MonthGaps(ctx context.Context, m Month, now time.Time) ([]ProductGap, error) {
	kinds, hours := collectors.Cadences()
	rows, err := s.pool.Query(ctx, `
	SELECT p.id, count(*)::int, count(r.hour) FILTER (WHERE r.state = 'done' AND `+pairedDoneSQL+`)::int, count(r.hour) FILTER (WHERE r.state = 'failed')::int
	  FROM products p
	 CROSS JOIN LATERAL generate_series(
	         greatest($1::timestamptz, date_trunc('hour', least(p.created_at, (SELECT min(hour) FROM collection_runs x WHERE x.product_id = p.id)))),
	         least($2::timestamptz, date_trunc('hour', $3::timestamptz), coalesce(p.deactivated_at, $2::timestamptz)) - interval '1 hour',
	         interval '1 hour') AS h(hour)
	  LEFT JOIN collection_runs r ON r.product_id = p.id AND r.hour = h.hour
	 WHERE `+dueSQL("h.hour", "$4", "$5")+`
	   AND (p.removed_at IS NULL OR h.hour < p.removed_at)
	 GROUP BY p.id
	 ORDER BY p.id`, m.Start, m.End, now, kinds, hours)
	if err != nil {
		return nil, fmt.Errorf("counting missing hours of %s: %w", m, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ProductGap, error) {
		var g ProductGap
		err := r.Scan(&g.ProductID, &g.Expected, &g.Collected, &g.Failed)
		g.Missing = g.Expected - g.Collected
		return g, err
	})
}

// HourlyTotal is the total of a metric of a product instance and edition in
// one hour of the month (reportable usage only).
type HourlyTotal struct {
	ProductID int64
	Metric    string
	Edition   string
	Unit      string
	Hour      time.Time
	Quantity  float64
	Objects   int64
	Collected bool // a done collection run exists for the product and hour
}

// HistoryRow is one span clipped to the month, with its placement names.
type HistoryRow struct {
	ProductID  int64
	Metric     string
	ObjectKey  string
	Edition    string
	Customer   string
	Reportable bool
	First      time.Time // first hour in the month
	Last       time.Time // last hour in the month
	Hours      float64
	Quantity   float64
	Unit       string
	// Names from dims; "" when absent.
	VM, Host, Cluster, Datacenter, Folder, ResourcePool, VCenter, VCD, Org string
	// State identifies the span's state: rows of one State have the same
	// Host, Cluster, Datacenter, VCenter and VCD.
	State int32
}

// HasUsage reports whether any span overlaps the month.
func (s *Store) HasUsage(ctx context.Context, m Month) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM span_objects WHERE first_hour < $2 AND last_hour >= $1)
		OR EXISTS (SELECT 1 FROM spans WHERE first_hour < $2 AND last_hour >= $1)`, m.Start, m.End).Scan(&ok)
	return ok, err
}

// ProductInfo is what a report says about a product instance.
type ProductInfo struct {
	ID         int64
	Kind       string
	Endpoint   string
	InstanceID string
	Version    string // what the product reported when added (products.version, else options.version), "" when unknown
}

// ProductInfos returns every product (active or not) by id, without
// touching credentials.
func (s *Store) ProductInfos(ctx context.Context) (map[int64]ProductInfo, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, kind, endpoint, instance_id, coalesce(nullif(version, ''), options ->> 'version', '') FROM products`)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ProductInfo, error) {
		var p ProductInfo
		err := r.Scan(&p.ID, &p.Kind, &p.Endpoint, &p.InstanceID, &p.Version)
		return p, err
	})
	if err != nil {
		return nil, err
	}
	m := make(map[int64]ProductInfo, len(list))
	for _, p := range list {
		m[p.ID] = p
	}
	return m, nil
}
