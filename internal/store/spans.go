package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usagemeter/usagemeter/collectors"
)

// Run states.
const (
	RunRunning = "running"
	RunDone    = "done"
	RunFailed  = "failed"
)

// ErrNotClaimed is returned when committing or failing an hour the caller
// does not hold (another daemon took it over, or it is already committed).
var ErrNotClaimed = errors.New("hour not claimed by this owner")

// ErrCommitted is returned when an hour is already committed.
var ErrCommitted = errors.New("hour already committed")

// Claim is the outcome of ClaimHour.
type Claim struct {
	Claimed    bool
	Attempts   int        // attempts so far, including this one when claimed
	State      string     // the run's state when not claimed (running: leased elsewhere; done)
	Owner      string     // who holds the lease when not claimed and running
	LeaseUntil *time.Time // until when, on the database's clock
}

// ClaimHour claims (product, hour) for owner with a lease. It succeeds for a
// new hour, a failed one, or a running one whose lease expired; a committed
// hour or one leased by someone else is not claimed. Leases use the
// database's clock, so daemons on several machines agree.
func (s *Store) ClaimHour(ctx context.Context, productID int64, hour time.Time, owner string, lease time.Duration) (Claim, error) {
	hour = hour.UTC().Truncate(time.Hour)
	var c Claim
	err := s.pool.QueryRow(ctx, `
		INSERT INTO collection_runs AS r (product_id, hour, state, attempts, lease_until, owner, started_at)
		VALUES ($1, $2, 'running', 1, clock_timestamp() + $3::interval, $4, clock_timestamp())
		ON CONFLICT (product_id, hour) DO UPDATE
		   SET state = 'running', attempts = r.attempts + 1, lease_until = EXCLUDED.lease_until,
		       owner = EXCLUDED.owner, started_at = EXCLUDED.started_at, finished_at = NULL
		 WHERE r.state = 'failed' OR (r.state = 'running' AND r.lease_until < clock_timestamp())
		RETURNING attempts`, productID, hour, lease, owner).Scan(&c.Attempts)
	if err == nil {
		c.Claimed = true
		return c, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("claiming hour %s of product %d: %w", hour.Format(time.RFC3339), productID, err)
	}
	err = s.pool.QueryRow(ctx, `SELECT state, attempts, coalesce(owner, ''), lease_until FROM collection_runs WHERE product_id = $1 AND hour = $2`,
		productID, hour).Scan(&c.State, &c.Attempts, &c.Owner, &c.LeaseUntil)
	if err != nil {
		return c, fmt.Errorf("reading the run of hour %s of product %d: %w", hour.Format(time.RFC3339), productID, err)
	}
	return c, nil
}

// ProductsToCollect lists the products due at hour (see ProductsDue) whose
// hour is still to be collected: no run yet, or a run left running by a
// daemon whose lease has expired (killed mid-collection). A failed hour is
// not listed: its retries within the hour were spent by whoever ran it.
func (s *Store) ProductsToCollect(ctx context.Context, hour time.Time) ([]Product, error) {
	kinds, hours := collectors.Cadences()
	return s.queryProducts(ctx, `SELECT `+productCols+` FROM products p
		WHERE removed_at IS NULL
		  AND ((active AND `+dueSQL("$1", "$2", "$3")+`) OR (deactivated_at IS NOT NULL
		                  AND extract(hour FROM deactivated_at AT TIME ZONE 'UTC') = extract(hour FROM $1::timestamptz AT TIME ZONE 'UTC')
		                  AND $1::timestamptz > deactivated_at))
		  AND NOT EXISTS (SELECT 1 FROM collection_runs r
		                   WHERE r.product_id = p.id AND r.hour = $1
		                     AND (r.state <> 'running' OR r.lease_until >= clock_timestamp()))
		ORDER BY id`, hour.UTC().Truncate(time.Hour), kinds, hours)
}

// Gap is an hour recorded as not collected, with its cause.
type Gap struct {
	ProductID int64
	Hour      time.Time
	Cause     string
}

// RecordMissedHour records hour as a gap of every active product that has no
// run for it, with cause as the run's error: the hour ended and nobody
// collected it. Products are expected from the earlier of their creation and
// their first run (as in MonthGaps); a product whose kind is collected less
// often than hourly (collectors.Kind.Every) is expected only in its due
// hours, so the hours between are no gaps. It returns the gaps it recorded; a
// concurrent daemon recording the same hour records each gap once.
func (s *Store) RecordMissedHour(ctx context.Context, hour time.Time, cause, owner string) ([]Gap, error) {
	hour = hour.UTC().Truncate(time.Hour)
	kinds, hours := collectors.Cadences()
	rows, err := s.pool.Query(ctx, `
		INSERT INTO collection_runs (product_id, hour, state, attempts, owner, finished_at, error)
		SELECT p.id, $1, 'failed', 0, $3, clock_timestamp(), $2
		  FROM products p
		 WHERE p.removed_at IS NULL AND p.active AND `+dueSQL("$1", "$4", "$5")+`
		   AND $1::timestamptz >= date_trunc('hour', least(p.created_at, (SELECT min(hour) FROM collection_runs x WHERE x.product_id = p.id)))
		ON CONFLICT (product_id, hour) DO NOTHING
		RETURNING product_id, hour, error`, hour, cause, owner, kinds, hours)
	if err != nil {
		return nil, fmt.Errorf("recording hour %s as not collected: %w", hour.Format(time.RFC3339), err)
	}
	return pgx.CollectRows(rows, scanGap)
}

// FailAbandonedRuns turns the runs of hours before `before` that are still
// running after their lease expired (their daemon was killed, and the hour
// ended before anyone could reclaim it) into gaps whose error says so.
func (s *Store) FailAbandonedRuns(ctx context.Context, before time.Time) ([]Gap, error) {
	rows, err := s.pool.Query(ctx, `
		UPDATE collection_runs
		   SET state = 'failed', finished_at = clock_timestamp(), lease_until = NULL,
		       error = 'not collected before the hour ended: the collection started at '
		               || coalesce(to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"'), '?')
		               || ' by ' || coalesce(owner, '?')
		               || ' never finished (that daemon was stopped or killed), and no daemon reclaimed it before the hour ended (its lease ran out at '
		               || to_char(lease_until AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"') || ')'
		 WHERE state = 'running' AND hour < $1 AND lease_until < clock_timestamp()
		RETURNING product_id, hour, error`, before.UTC().Truncate(time.Hour))
	if err != nil {
		return nil, fmt.Errorf("recording abandoned collections: %w", err)
	}
	return pgx.CollectRows(rows, scanGap)
}

func scanGap(r pgx.CollectableRow) (Gap, error) {
	var g Gap
	err := r.Scan(&g.ProductID, &g.Hour, &g.Cause)
	return g, err
}

// FailHour records a failed attempt; the hour can be claimed again.
func (s *Store) FailHour(ctx context.Context, productID int64, hour time.Time, owner, errText string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE collection_runs SET state = 'failed', lease_until = NULL, finished_at = clock_timestamp(), error = $4
		WHERE product_id = $1 AND hour = $2 AND state = 'running' AND owner = $3`, productID, hour.UTC().Truncate(time.Hour), owner, errText)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotClaimed
	}
	return nil
}

// Run is one collection_runs row.
type Run struct {
	ProductID  int64
	Hour       time.Time
	State      string
	Attempts   int
	Error      string
	Objects    int
	StartedAt  *time.Time
	FinishedAt *time.Time
}

// Run returns the run of (product, hour).
func (s *Store) Run(ctx context.Context, productID int64, hour time.Time) (Run, error) {
	r := Run{ProductID: productID}
	var errText *string
	var objects *int
	err := s.pool.QueryRow(ctx, `SELECT hour, state, attempts, error, objects, started_at, finished_at FROM collection_runs WHERE product_id = $1 AND hour = $2`,
		productID, hour.UTC().Truncate(time.Hour)).Scan(&r.Hour, &r.State, &r.Attempts, &errText, &objects, &r.StartedAt, &r.FinishedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, ErrNotFound
	}
	if errText != nil {
		r.Error = *errText
	}
	if objects != nil {
		r.Objects = *objects
	}
	return r, err
}

// MergeResult counts what a commit did.
type MergeResult struct {
	Observations int // distinct observations stored
	Duplicates   int // observations dropped because (metric, object) repeated in the hour
	Extended     int // spans ending at H-1 extended to H
	Inserted     int // new spans [H, H]
	Joined       int // spans starting at H+1 joined (an hour filled in late)
}

// StateHash is the hash under which consecutive hours of an object share a
// span: quantity, unit, edition and dims.
func StateHash(o collectors.Observation) ([]byte, []byte) {
	dims, _ := json.Marshal(o.Dims) // map keys are sorted by encoding/json
	if o.Dims == nil {
		dims = []byte("{}")
	}
	h := sha256.New()
	h.Write([]byte(strconv.FormatFloat(o.Quantity, 'g', -1, 64)))
	h.Write([]byte{0})
	h.Write([]byte(o.Unit))
	h.Write([]byte{0})
	h.Write([]byte(o.Edition))
	h.Write([]byte{0})
	h.Write(dims)
	return h.Sum(nil), dims
}

// createMergeObs makes the staging table of CommitHour: a temporary table
// (each connection of the pool has its own, so concurrent commits never
// share it), created by the first commit on a connection and emptied by
// every commit (ON COMMIT DELETE ROWS truncates it). A temporary table
// created and dropped by each commit wrote and deleted catalog rows (pg_class,
// pg_attribute, pg_type) every time; this one is created once per connection,
// or again if the transaction that created it rolled back.
const createMergeObs = `CREATE TEMP TABLE IF NOT EXISTS merge_obs (
	metric text, object_key text, quantity double precision, unit text, edition text, dims_hash bytea, dims text
) ON COMMIT DELETE ROWS`

// CommitHour stores the observations of (product, hour) and marks the run
// done, in one transaction: COPY into the connection's staging table, extend
// every span of the product ending at H-1 with an equal state hash, insert the
// rest as [H, H], join spans starting at H+1 (a late hour), mark the run. The
// caller must hold the claim; a committed hour is never written twice
// (ErrCommitted).
func (s *Store) CommitHour(ctx context.Context, productID int64, hour time.Time, owner string, obs []collectors.Observation) (MergeResult, error) {
	hour = hour.UTC().Truncate(time.Hour)
	var res MergeResult

	// Rows to copy, deduplicated by (metric, object_key): the first wins.
	seen := make(map[[2]string]struct{}, len(obs))
	rows := make([][]any, 0, len(obs))
	for _, o := range obs {
		k := [2]string{o.Metric, o.ObjectKey}
		if _, dup := seen[k]; dup {
			res.Duplicates++
			continue
		}
		seen[k] = struct{}{}
		hash, dims := StateHash(o)
		rows = append(rows, []any{o.Metric, o.ObjectKey, o.Quantity, o.Unit, o.Edition, hash, string(dims)})
	}
	res.Observations = len(rows)

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return res, err
	}
	defer tx.Rollback(ctx)

	// In one round trip: make sure this connection has its staging table,
	// and lock the run row (a concurrent commit of the same hour waits here).
	var state, runOwner string
	batch := &pgx.Batch{}
	batch.Queue(createMergeObs)
	batch.Queue(`SELECT state, coalesce(owner, '') FROM collection_runs WHERE product_id = $1 AND hour = $2 FOR UPDATE`, productID, hour).
		QueryRow(func(r pgx.Row) error { return r.Scan(&state, &runOwner) })
	err = tx.SendBatch(ctx, batch).Close()
	if errors.Is(err, pgx.ErrNoRows) {
		return res, ErrNotClaimed
	}
	if err != nil {
		return res, err
	}
	if state == RunDone {
		return res, ErrCommitted
	}
	if state != RunRunning || runOwner != owner {
		return res, ErrNotClaimed
	}

	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"merge_obs"},
		[]string{"metric", "object_key", "quantity", "unit", "edition", "dims_hash", "dims"}, pgx.CopyFromRows(rows)); err != nil {
		return res, fmt.Errorf("copying observations: %w", err)
	}
	// Every step below finds spans by object, through the index on
	// (product_id, metric, object_key, first_hour): an object's latest span
	// starting at or before an hour is one index probe (a LATERAL ... LIMIT 1,
	// which the planner can only run as a loop over the observations), and
	// only then are its last hour and state hash compared. Spans are never
	// joined to observations on the state hash, which many objects may share
	// (a count with minimal dims): such a join multiplies them and made the
	// merge quadratic. No plan depends on statistics of merge_obs, which is
	// therefore not analysed. Spans of an object are disjoint, so its span
	// ending at H-1, if any, is its latest starting at or before H-1.
	// last_hour stays out of every index: extending a span is a HOT update.
	//
	// The merge: extend the span ending at H-1 of every object whose state is
	// unchanged, insert [H, H] for the others. The extension finds its spans
	// by primary key from the array of their ids: joined to the CTE instead,
	// the planner hashed the whole usage_spans table (all products, all
	// history) every hour, 0.3 s of a 1.3 s merge at 50,000 VMs with a month
	// of history, and growing with retention.
	prev := hour.Add(-time.Hour)
	var matched int
	err = tx.QueryRow(ctx, `
		WITH obj AS MATERIALIZED (
			SELECT o.*, latest.id AS span_id
			  FROM merge_obs o
			  LEFT JOIN LATERAL (SELECT x.id, x.last_hour, x.dims_hash FROM usage_spans x
			                      WHERE x.product_id = $1 AND x.metric = o.metric AND x.object_key = o.object_key AND x.first_hour <= $3
			                      ORDER BY x.first_hour DESC LIMIT 1) latest
			    ON latest.last_hour = $3 AND latest.dims_hash = o.dims_hash
		), ext AS (
			UPDATE usage_spans s SET last_hour = $2
			 WHERE s.id = ANY ((SELECT array_agg(span_id) FROM obj WHERE span_id IS NOT NULL)::bigint[])
			RETURNING 1
		), ins AS (
			INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims_hash, dims)
			SELECT $1, obj.metric, obj.object_key, $2, $2, obj.quantity, obj.unit, obj.edition, obj.dims_hash, obj.dims::jsonb
			  FROM obj
			 WHERE obj.span_id IS NULL
			RETURNING 1
		)
		SELECT (SELECT count(*) FROM obj WHERE span_id IS NOT NULL), (SELECT count(*) FROM ext), (SELECT count(*) FROM ins)`,
		productID, hour, prev).Scan(&matched, &res.Extended, &res.Inserted)
	if err != nil {
		return res, fmt.Errorf("merging spans: %w", err)
	}
	if res.Extended < matched {
		// A span to extend was deleted after this statement's snapshot (a
		// late hour committed meanwhile joined it to an earlier one): its
		// object gets a new span [H, H], found now as an object whose latest
		// span does not reach H.
		tag, err := tx.Exec(ctx, `
			INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims_hash, dims)
			SELECT $1, o.metric, o.object_key, $2, $2, o.quantity, o.unit, o.edition, o.dims_hash, o.dims::jsonb
			  FROM merge_obs o
			  LEFT JOIN LATERAL (SELECT x.last_hour FROM usage_spans x
			                      WHERE x.product_id = $1 AND x.metric = o.metric AND x.object_key = o.object_key AND x.first_hour <= $2
			                      ORDER BY x.first_hour DESC LIMIT 1) latest ON true
			 WHERE latest.last_hour IS NULL OR latest.last_hour < $2`, productID, hour)
		if err != nil {
			return res, fmt.Errorf("inserting spans: %w", err)
		}
		res.Inserted += int(tag.RowsAffected())
	}

	// A late hour: join each span starting at H+1 to its object's span now
	// ending at H when their states are equal.
	next := hour.Add(time.Hour)
	var later bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM usage_spans WHERE product_id = $1 AND first_hour = $2)`, productID, next).Scan(&later); err != nil {
		return res, err
	}
	if later {
		tag, err := tx.Exec(ctx, `
			WITH nxt AS (
				DELETE FROM usage_spans n
				 USING (SELECT f.id, cur.id AS cur_id
				          FROM usage_spans f
				         CROSS JOIN LATERAL (SELECT x.id, x.last_hour, x.dims_hash FROM usage_spans x
				                              WHERE x.product_id = $1 AND x.metric = f.metric AND x.object_key = f.object_key AND x.first_hour <= $2
				                              ORDER BY x.first_hour DESC LIMIT 1) cur
				         WHERE f.product_id = $1 AND f.first_hour = $3 AND cur.last_hour = $2 AND cur.dims_hash = f.dims_hash) pair
				 WHERE n.id = pair.id
				RETURNING pair.cur_id, n.last_hour
			)
			UPDATE usage_spans c SET last_hour = nxt.last_hour
			  FROM nxt
			 WHERE c.id = nxt.cur_id`, productID, hour, next)
		if err != nil {
			return res, fmt.Errorf("joining late hour: %w", err)
		}
		res.Joined = int(tag.RowsAffected())
	}

	if _, err := tx.Exec(ctx, `UPDATE collection_runs SET state = 'done', lease_until = NULL, finished_at = clock_timestamp(), error = NULL, objects = $3
		WHERE product_id = $1 AND hour = $2`, productID, hour, res.Observations); err != nil {
		return res, err
	}
	return res, tx.Commit(ctx)
}

// Span is one usage_spans row.
type Span struct {
	ProductID int64
	Metric    string
	ObjectKey string
	FirstHour time.Time
	LastHour  time.Time
	Quantity  float64
	Unit      string
	Edition   string
	Dims      map[string]string
}

// Spans lists a product's spans, ordered by metric, object and time (tests, reports of one object).
func (s *Store) Spans(ctx context.Context, productID int64) ([]Span, error) {
	rows, err := s.pool.Query(ctx, `SELECT product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims
		FROM usage_spans WHERE product_id = $1 ORDER BY metric, object_key, first_hour`, productID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Span, error) {
		var sp Span
		err := r.Scan(&sp.ProductID, &sp.Metric, &sp.ObjectKey, &sp.FirstHour, &sp.LastHour, &sp.Quantity, &sp.Unit, &sp.Edition, &sp.Dims)
		return sp, err
	})
}
