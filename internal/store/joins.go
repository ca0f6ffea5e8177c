package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// vcdJoin are the Cloud Director VMs (spans of metrics carrying vram_mb)
// and whether their vCenter is registered: vc_moref is "<vCenter instance
// UUID>/<VM MoRef>" on both sides (VCD dims vcenter_uuid + vm_moref; the
// vCenter's object key prefix + dims moref).
const vcdJoin = `
	WITH reg AS (SELECT instance_id FROM products WHERE kind = 'vcenter' AND instance_id <> ''),
	n AS (
		SELECT ms.*, split_part(coalesce(ms.vc_moref, ''), '/', 1) IN (SELECT instance_id FROM reg) AS registered
		  FROM month_spans ms
		 WHERE ms.metric = ANY($1::text[]) AND ms.vram_mb IS NOT NULL
	)`

// VCDVRAMFigures: the average capped billed vRAM of Cloud Director's VMs
// (vm.managed), in GB. A VM whose vCenter is registered bills the
// vCenter's capped billed vRAM (reservations included) in the hours both
// exist: joined by vCenter instance UUID + MoRef, hour by hour, as
// JoinedVRAMFigures does for NSX. A VM whose vCenter is not registered
// keeps Cloud Director's estimate (vram_mb, configured memory only); they
// are counted by UnjoinedVCD.
func (d *MonthData) VCDVRAMFigures(ctx context.Context, metrics []string) ([]Figure, error) {
	return d.figures(ctx, "joining Cloud Director VMs to their vCenter", metrics, vcdJoin+`,
	mb AS (
		SELECT n.product_id, n.metric, n.edition, n.customer, n.reportable,
		       v.quantity * (date_part('epoch', least(n.h1, v.h1) - greatest(n.h0, v.h0)) / 3600 + 1) AS mbh
		  FROM n JOIN month_spans v ON v.metric IN ('vm.vram', '`+MetricVRAMInVCF+`') AND v.vc_moref = n.vc_moref AND v.h0 <= n.h1 AND v.h1 >= n.h0
		 WHERE n.registered
		UNION ALL
		SELECT product_id, metric, edition, customer, reportable, vram_mb * hours FROM n WHERE NOT registered
	), g AS (
		SELECT product_id, metric, edition, customer, reportable, count(DISTINCT object_key) AS objects, sum(hours) AS hours
		  FROM n GROUP BY 1, 2, 3, 4, 5
	)
	SELECT g.product_id, g.metric, g.edition, g.customer, g.reportable, 'GB',
	       coalesce((SELECT sum(mbh) FROM mb WHERE (mb.product_id, mb.metric, mb.edition, mb.customer, mb.reportable)
	                                                = (g.product_id, g.metric, g.edition, g.customer, g.reportable)), 0) / 1024 / $2::float8,
	       g.objects, g.hours
	  FROM g
	 ORDER BY 1, 2, 3, 4, 5`, float64(d.m.Hours()))
}

// Unjoined is a count of a product's objects that could not be joined to a
// registered vCenter.
type Unjoined struct {
	ProductID int64
	Metric    string
	Objects   int64
}

// UnjoinedVCD counts, per product, the Cloud Director VMs whose vCenter is
// not registered (their vRAM is Cloud Director's estimate).
func (d *MonthData) UnjoinedVCD(ctx context.Context, metrics []string) ([]Unjoined, error) {
	if metrics = d.present(metrics); len(metrics) == 0 {
		return nil, nil
	}
	rows, err := d.tx.Query(ctx, vcdJoin+`
	SELECT product_id, metric, count(DISTINCT object_key) FROM n WHERE NOT registered GROUP BY 1, 2 ORDER BY 1, 2`, metrics)
	if err != nil {
		return nil, err
	}
	return collectUnjoined(rows)
}

func collectUnjoined(rows pgx.Rows) ([]Unjoined, error) {
	defer rows.Close()
	var out []Unjoined
	for rows.Next() {
		var u Unjoined
		if err := rows.Scan(&u.ProductID, &u.Metric, &u.Objects); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// pairedDoneSQL (in MonthGaps, over products p and runs r): an NSX hour
// counts as collected only when its paired vCenter's hour was collected
// too: NSX's VMs are billed on the vCenter's vRAM, so without it the hour
// is a gap of the NSX product, not a silent zero.
const pairedDoneSQL = `(p.kind NOT IN ('nsxt', 'nsxv') OR p.paired_id IS NULL OR EXISTS (
	SELECT 1 FROM collection_runs pr WHERE pr.product_id = p.paired_id AND pr.hour = r.hour AND pr.state = 'done'))`

// UnjoinedNSX counts, per product, the VMs reached by NSX (metrics) that no
// registered vCenter billed in the month: their vRAM is unknown.
func (d *MonthData) UnjoinedNSX(ctx context.Context, metrics []string) ([]Unjoined, error) {
	if metrics = d.present(metrics); len(metrics) == 0 {
		return nil, nil
	}
	rows, err := d.tx.Query(ctx, `
	SELECT n.product_id, n.metric, count(DISTINCT n.object_key) FROM month_spans n
	 WHERE n.metric = ANY($1::text[])
	   AND NOT EXISTS (SELECT 1 FROM month_spans v WHERE v.metric IN ('vm.vram', '`+MetricVRAMInVCF+`') AND v.vm_uuid = n.vm_uuid)
	 GROUP BY 1, 2 ORDER BY 1, 2`, metrics)
	if err != nil {
		return nil, err
	}
	return collectUnjoined(rows)
}
