package receiver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/big"

	"github.com/jackc/pgx/v5"
)

// Month is the provider report of one month across appliances.
type Month struct {
	Month string `json:"month"`
	// Bundles are the versions merged: each appliance's latest verified.
	Bundles []MergedBundle `json:"bundles"`
	// Lines: the sum per contract, product, edition, metric, unit and
	// customer of the billed parts, each part an appliance's line.
	Lines []Line `json:"lines"`
	// Shared are the product instances metered by more than one
	// appliance: billed once, by the appliance named.
	Shared []Shared `json:"shared"`
}

// MergedBundle is one appliance's bundle in a merge.
type MergedBundle struct {
	ApplianceID string `json:"appliance_id"`
	Version     int    `json:"version"`
	SHA256      string `json:"sha256"`
}

// Line is one figure of the provider report.
type Line struct {
	Contract string `json:"contract"`
	Product  string `json:"product"`
	Edition  string `json:"edition"`
	Metric   string `json:"metric"`
	Unit     string `json:"unit"`
	Customer string `json:"customer"`
	Quantity string `json:"quantity"` // billed: the sum of the billed parts, 3 decimals
	Parts    []Part `json:"parts"`
}

// Part is an appliance's line for one product host.
type Part struct {
	ApplianceID string `json:"appliance_id"`
	ProductHost string `json:"product_host"`
	Quantity    string `json:"quantity"`
	Billed      bool   `json:"billed"`
	// BilledBy names the appliance that bills the instance instead, when
	// this part is not billed.
	BilledBy string `json:"billed_by,omitempty"`
}

// Shared is a product instance several appliances metered.
type Shared struct {
	Identity   string   `json:"identity"`
	Appliances []string `json:"appliances"`
	BilledBy   string   `json:"billed_by"`
}

// Merge computes the provider report of month from each appliance's latest
// verified bundle. It is a pure read (see MergeEach): the minute job
// (Check) marks the bundles merged. A product instance
// (same fleet fingerprint, or same Product Host hash when no fingerprint is
// known) reported by several appliances is billed by the first enrolled of
// them; the others' lines are listed, not billed, and flagged. The month
// is held whole: MergeEach passes its lines on instead.
func (r *Receiver) Merge(ctx context.Context, month string) (*Month, error) {
	var lines []Line
	m, err := r.MergeEach(ctx, month, func(l Line) error {
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if lines != nil {
		m.Lines = lines
	}
	return m, nil
}

// MergeEach is Merge that passes each line of the month to each as it is
// summed, in the month's order, and holds none: its memory does not grow
// with the fleet. The month returned has no Lines. It writes nothing: it
// runs in a read-only transaction, so that a page or a GET of the API that
// shows a month changes no state (the bundles are marked merged by Check).
func (r *Receiver) MergeEach(ctx context.Context, month string, each func(Line) error) (*Month, error) {
	return r.mergeEach(ctx, month, each, false)
}

// mergeEach is MergeEach; mark also marks the bundles merged, in the same
// transaction (so exactly the bundles merged): the minute job's merge.
func (r *Receiver) mergeEach(ctx context.Context, month string, each func(Line) error, mark bool) (*Month, error) {
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	if mark {
		opts.AccessMode = pgx.ReadWrite
	}
	tx, err := r.Pool.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	m := &Month{Month: month, Bundles: []MergedBundle{}, Lines: []Line{}, Shared: []Shared{}}
	rows, err := tx.Query(ctx, `SELECT a.appliance_id, b.version, b.sha256 FROM receiver_bundles b JOIN receiver_appliances a ON a.id = b.appliance
		WHERE b.month = $1 AND b.state = 'verified' AND b.replaced_by IS NULL ORDER BY a.id`, month)
	if err != nil {
		return nil, err
	}
	if m.Bundles, err = pgx.CollectRows(rows, pgx.RowToStructByPos[MergedBundle]); err != nil {
		return nil, err
	}
	rows, err = tx.Query(ctx, mergeSQL, month)
	if err != nil {
		return nil, err
	}
	var (
		cur                                                      *Line
		contract, product, edition, metric, unit, customer, appl string
		host, qty, billedBy                                      string
		billed                                                   bool
		total                                                    *big.Rat
	)
	flush := func() error {
		if cur == nil {
			return nil
		}
		cur.Quantity = total.FloatString(3)
		return each(*cur)
	}
	_, err = pgx.ForEachRow(rows, []any{&contract, &product, &edition, &metric, &unit, &customer, &appl, &host, &qty, &billed, &billedBy}, func() error {
		if cur == nil || cur.Contract != contract || cur.Product != product || cur.Edition != edition || cur.Metric != metric || cur.Unit != unit || cur.Customer != customer {
			if err := flush(); err != nil {
				return err
			}
			cur = &Line{Contract: contract, Product: product, Edition: edition, Metric: metric, Unit: unit, Customer: customer}
			total = new(big.Rat)
		}
		q, ok := new(big.Rat).SetString(qty)
		if !ok {
			return fmt.Errorf("quantity %q", qty)
		}
		p := Part{ApplianceID: appl, ProductHost: host, Quantity: q.FloatString(3), Billed: billed}
		if billed {
			total.Add(total, q)
		} else {
			p.BilledBy = billedBy
		}
		cur.Parts = append(cur.Parts, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	rows, err = tx.Query(ctx, sharedSQL, month)
	if err != nil {
		return nil, err
	}
	if m.Shared, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Shared]); err != nil {
		return nil, err
	}
	if mark {
		if _, err := tx.Exec(ctx, `UPDATE receiver_bundles SET merged_at = $2
			WHERE month = $1 AND state = 'verified' AND replaced_by IS NULL AND merged_at IS NULL`, month, r.now()); err != nil {
			return nil, err
		}
	}
	return m, tx.Commit(ctx)
}

// current is the month's latest verified bundle of each appliance, with
// the lines and the owner (first enrolled appliance) of each identity.
const current = `WITH cur AS (
	SELECT b.id, b.appliance, b.contract FROM receiver_bundles b
	 WHERE b.month = $1 AND b.state = 'verified' AND b.replaced_by IS NULL),
lines AS (SELECT l.*, cur.appliance, cur.contract FROM receiver_lines l JOIN cur ON cur.id = l.bundle),
owner AS (SELECT identity, min(appliance) AS owner, count(DISTINCT appliance) AS n FROM lines GROUP BY identity)
`

const mergeSQL = current + `SELECT l.contract, l.product, l.edition, l.metric, l.unit, l.customer, a.appliance_id, l.product_host,
	sum(l.quantity)::text, o.owner = l.appliance, oa.appliance_id
  FROM lines l JOIN owner o USING (identity)
  JOIN receiver_appliances a ON a.id = l.appliance JOIN receiver_appliances oa ON oa.id = o.owner
 GROUP BY l.contract, l.product, l.edition, l.metric, l.unit, l.customer, a.appliance_id, a.id, l.product_host, o.owner, l.appliance, oa.appliance_id
 ORDER BY l.contract, l.product, l.edition, l.metric, l.unit, l.customer, a.id, l.product_host`

const sharedSQL = current + `SELECT o.identity, array_agg(DISTINCT a.appliance_id ORDER BY a.appliance_id), min(oa.appliance_id)
  FROM owner o JOIN lines l USING (identity) JOIN receiver_appliances a ON a.id = l.appliance
  JOIN receiver_appliances oa ON oa.id = o.owner
 WHERE o.n > 1 GROUP BY o.identity ORDER BY o.identity`

// tsvHeader is the header of Provider_Monthly_Usage.tsv.
const tsvHeader = "Contract\tProduct\tEdition\tMetric\tUnit\tCustomer\tAppliance\tProduct Host\tQuantity\tBilled\n"

// WriteTSV writes the provider report as Provider_Monthly_Usage.tsv: per
// contract and figure, a line "ALL" with the billed sum, then a line per
// appliance and product host, "no (billed by X)" when another appliance
// bills it.
func (m *Month) WriteTSV(w io.Writer) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(tsvHeader)
	for _, l := range m.Lines {
		writeTSVLine(bw, l)
	}
	return bw.Flush()
}

// WriteTSV merges month (see MergeEach) and writes it to w as
// Month.WriteTSV does, each line as it is summed: the month is not held.
func (r *Receiver) WriteTSV(ctx context.Context, month string, w io.Writer) (*Month, error) {
	bw := bufio.NewWriter(w)
	bw.WriteString(tsvHeader)
	m, err := r.MergeEach(ctx, month, func(l Line) error {
		writeTSVLine(bw, l)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, bw.Flush()
}

// writeTSVLine writes a line of the provider report: "ALL" and its parts.
// The writer's error is returned by its Flush.
func writeTSVLine(w *bufio.Writer, l Line) {
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\tALL\t\t%s\tyes\n", l.Contract, l.Product, l.Edition, l.Metric, l.Unit, l.Customer, l.Quantity)
	for _, p := range l.Parts {
		billed := "yes"
		if !p.Billed {
			billed = "no (billed by " + p.BilledBy + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Contract, l.Product, l.Edition, l.Metric, l.Unit, l.Customer, p.ApplianceID, p.ProductHost, p.Quantity, billed)
	}
}
