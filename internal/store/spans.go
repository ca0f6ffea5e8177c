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
	metric text, object_key text, quantity double precision, unit text, edition text, hash bytea, dims text
) ON COMMIT DELETE ROWS`

// commitLock is the first key of the advisory lock that serialises the
// commits of one product (the second key is the product id): two hours of a
// product committed at once (a catch-up beside the current hour) would
// otherwise both create the same new object, or both move its latest span.
const commitLock = 0x55534d31 // "USM1"

// CommitHour stores the observations of (product, hour) and marks the run
// done, in one transaction: COPY into the connection's staging table,
// extend the latest span of every object whose state is unchanged since
// H-1, close the latest span of every object that changed and start [H, H],
// add the objects not seen before, fill in a late hour, mark the run. The
// caller must hold the claim; a committed hour is never written twice
// (ErrCommitted).
//
// Spans live in span_objects (each object's latest span) and spans (its
// earlier, closed ones); see migrations/005_spans_by_object.sql. Every step
// is one set-based statement joining the staging table to span_objects on
// the object's key, never on a state hash that many objects may share.
func (s *Store) CommitHour(ctx context.Context, productID int64, hour time.Time, owner string, obs []collectors.Observation) (MergeResult, error) {
	hour = hour.UTC().Truncate(time.Hour)
	var res MergeResult

	// Rows to copy, deduplicated by (metric, object_key): the first wins.
	// Only the key, quantity and state hash are copied: the unit, edition
	// and dims of an observation are sent only when its object's state
	// changed (below), most hours for a few percent of the objects.
	seen := make(map[[2]string]int, len(obs))
	rows := make([][]any, 0, len(obs))
	full := make([]collectors.Observation, 0, len(obs))
	dims := make([]string, 0, len(obs))
	for _, o := range obs {
		k := [2]string{o.Metric, o.ObjectKey}
		if _, dup := seen[k]; dup {
			res.Duplicates++
			continue
		}
		seen[k] = len(rows)
		hash, d := StateHash(o)
		rows = append(rows, []any{o.Metric, o.ObjectKey, o.Quantity, hash})
		full = append(full, o)
		dims = append(dims, string(d))
	}
	res.Observations = len(rows)

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return res, err
	}
	defer tx.Rollback(ctx)

	// In one round trip: make sure this connection has its staging table,
	// take the product's commit lock, and lock the run row (a concurrent
	// commit of the same hour waits here).
	var state, runOwner string
	batch := &pgx.Batch{}
	batch.Queue(createMergeObs)
	batch.Queue(`SELECT pg_advisory_xact_lock($1, $2::int)`, commitLock, productID)
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

	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"merge_obs"}, []string{"metric", "object_key", "quantity", "hash"}, pgx.CopyFromRows(rows)); err != nil {
		return res, fmt.Errorf("copying observations: %w", err)
	}

	// 1. Extend the latest span of every object whose state did not change
	// since H-1: one join of the staging table to span_objects on the
	// object's key and state hash, updating last_hour only (a HOT update).
	// It returns the others.
	prev := hour.Add(-time.Hour)
	var restUnit, restEdition, restDims, restMetric, restKey []string
	rs, err := tx.Query(ctx, `
		WITH ext AS (
			UPDATE span_objects x SET last_hour = $2
			  FROM merge_obs o
			 WHERE x.product_id = $1 AND x.metric = o.metric AND x.object_key = o.object_key AND x.last_hour = $3 AND x.hash = o.hash
			RETURNING x.metric, x.object_key
		)
		SELECT o.metric, o.object_key FROM merge_obs o
		 WHERE NOT EXISTS (SELECT 1 FROM ext WHERE ext.metric = o.metric AND ext.object_key = o.object_key)`, productID, hour, prev)
	if err != nil {
		return res, fmt.Errorf("extending spans: %w", err)
	}
	var k [2]string
	_, err = pgx.ForEachRow(rs, []any{&k[0], &k[1]}, func() error {
		o := full[seen[k]]
		restMetric, restKey = append(restMetric, k[0]), append(restKey, k[1])
		restUnit, restEdition, restDims = append(restUnit, o.Unit), append(restEdition, o.Edition), append(restDims, dims[seen[k]])
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("extending spans: %w", err)
	}
	res.Extended = len(rows) - len(restKey)
	if len(restKey) == 0 {
		return res, s.finishHour(ctx, tx, productID, hour, res)
	}

	// 1b. The others get their unit, edition and dims. An object whose
	// hash is unknown (written by migration 005 or through the usage_spans
	// view) is compared by content, once, and extended if unchanged (its
	// hash is then recorded). The dims of the rest are stored (once each).
	if _, err := tx.Exec(ctx, `
		UPDATE merge_obs o SET unit = u.unit, edition = u.edition, dims = u.dims
		  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(metric, object_key, unit, edition, dims)
		 WHERE o.metric = u.metric AND o.object_key = u.object_key`, restMetric, restKey, restUnit, restEdition, restDims); err != nil {
		return res, fmt.Errorf("staging the changed observations: %w", err)
	}
	var rest, byContent int
	err = tx.QueryRow(ctx, `
		WITH ext AS (
			UPDATE span_objects x SET last_hour = $2, hash = o.hash
			  FROM merge_obs o
			 WHERE x.product_id = $1 AND x.metric = o.metric AND x.object_key = o.object_key AND x.last_hour = $3
			   AND x.hash IS NULL AND o.dims IS NOT NULL AND x.quantity = o.quantity
			   AND EXISTS (SELECT 1 FROM span_states st, span_names nm
			                WHERE st.id = x.state_id AND nm.id = x.names_id
			                  AND st.unit = o.unit AND st.edition = o.edition AND nm.dims || st.dims = o.dims::jsonb)
			RETURNING x.metric, x.object_key
		), rest AS MATERIALIZED (
			SELECT o.unit, o.edition, span_place(o.dims::jsonb) AS place, span_own(o.dims::jsonb) AS own
			  FROM merge_obs o
			 WHERE o.dims IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.metric = o.metric AND ext.object_key = o.object_key)
		), states AS (
			INSERT INTO span_states (hash, unit, edition, dims)
			SELECT DISTINCT ON (h) h, unit, edition, place
			  FROM (SELECT span_state_hash(unit, edition, place) AS h, unit, edition, place FROM rest) r
			 ORDER BY h
			ON CONFLICT (hash) DO NOTHING
			RETURNING 1
		), names AS (
			INSERT INTO span_names (hash, dims)
			SELECT DISTINCT ON (h) h, own
			  FROM (SELECT span_names_hash(own) AS h, own FROM rest) r
			 ORDER BY h
			ON CONFLICT (hash) DO NOTHING
			RETURNING 1
		)
		SELECT (SELECT count(*) FROM ext), (SELECT count(*) FROM rest), (SELECT count(*) FROM states) + (SELECT count(*) FROM names)`,
		productID, hour, prev).Scan(&byContent, &rest, new(int))
	if err != nil {
		return res, fmt.Errorf("extending spans: %w", err)
	}
	res.Extended += byContent

	// 2. The others: an object that changed, or came back after a gap, has
	// its latest span closed (moved to spans) and [H, H] as its latest; a
	// new object is added with [H, H]. An object whose latest span starts
	// after H is a late hour (below).
	var late int
	if rest > 0 {
		var moved, added int
		err = tx.QueryRow(ctx, `
			WITH r0 AS MATERIALIZED (
				SELECT o.*, x.id AS object_id, x.first_hour AS cur_first, x.last_hour AS cur_last, x.quantity AS cur_q,
				       x.state_id AS cur_state, x.names_id AS cur_names
				  FROM merge_obs o
				  LEFT JOIN span_objects x ON x.product_id = $1 AND x.metric = o.metric AND x.object_key = o.object_key
				 WHERE o.dims IS NOT NULL AND (x.id IS NULL OR x.last_hour <> $2)
			), r AS MATERIALIZED (
				SELECT r0.*, st.id AS state_id, nm.id AS names_id
				  FROM r0
				  JOIN span_states st ON st.hash = span_state_hash(r0.unit, r0.edition, span_place(r0.dims::jsonb))
				  JOIN span_names nm ON nm.hash = span_names_hash(span_own(r0.dims::jsonb))
				 WHERE r0.object_id IS NULL OR r0.cur_last < $2
			), closed AS (
				INSERT INTO spans (object_id, first_hour, last_hour, quantity, state_id, names_id)
				SELECT object_id, cur_first, cur_last, cur_q, cur_state, cur_names FROM r WHERE object_id IS NOT NULL
				RETURNING 1
			), moved AS (
				UPDATE span_objects x
				   SET first_hour = $2, last_hour = $2, quantity = r.quantity, state_id = r.state_id, names_id = r.names_id, hash = r.hash
				  FROM r
				 WHERE x.id = r.object_id
				RETURNING 1
			), added AS (
				INSERT INTO span_objects (product_id, metric, object_key, first_hour, last_hour, quantity, state_id, names_id, hash)
				SELECT $1, metric, object_key, $2, $2, quantity, state_id, names_id, hash FROM r WHERE object_id IS NULL
				RETURNING 1
			)
			SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM added), (SELECT count(*) FROM r0 WHERE cur_first > $2)`,
			productID, hour).Scan(&moved, &added, &late)
		if err != nil {
			return res, fmt.Errorf("starting spans: %w", err)
		}
		res.Inserted = moved + added
	}
	if late > 0 {
		ext, ins, joined, err := commitLate(ctx, tx, productID, hour)
		if err != nil {
			return res, err
		}
		res.Extended += ext
		res.Inserted += ins
		res.Joined += joined
	}

	return res, s.finishHour(ctx, tx, productID, hour, res)
}

// finishHour marks the run of a merged hour done and commits.
func (s *Store) finishHour(ctx context.Context, tx pgx.Tx, productID int64, hour time.Time, res MergeResult) error {
	if _, err := tx.Exec(ctx, `UPDATE collection_runs SET state = 'done', lease_until = NULL, finished_at = clock_timestamp(), error = NULL, objects = $3
		WHERE product_id = $1 AND hour = $2`, productID, hour, res.Observations); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// lateObs is the WITH item "late" of commitLate: the observations of objects
// whose latest span starts after the hour ($2), with their ids.
const lateObs = `late AS MATERIALIZED (
	SELECT x.id AS object_id, o.quantity, st.id AS state_id, nm.id AS names_id
	  FROM merge_obs o
	  JOIN span_objects x ON x.product_id = $1 AND x.metric = o.metric AND x.object_key = o.object_key
	  JOIN span_states st ON st.hash = span_state_hash(o.unit, o.edition, span_place(o.dims::jsonb))
	  JOIN span_names nm ON nm.hash = span_names_hash(span_own(o.dims::jsonb))
	 WHERE x.first_hour > $2
)`

// commitLate files a late hour H (replayed after later hours were
// committed) among an object's earlier spans: the closed span ending at H-1
// in the same state is extended, or [H, H] inserted; then the span starting
// at H+1 in the same state, the latest or a closed one, is joined to it.
// Closed spans are found by time (BRIN on last_hour), then by object.
func commitLate(ctx context.Context, tx pgx.Tx, productID int64, hour time.Time) (extended, inserted, joined int, err error) {
	prev, next := hour.Add(-time.Hour), hour.Add(time.Hour)
	err = tx.QueryRow(ctx, `
		WITH `+lateObs+`, ext AS (
			UPDATE spans s SET last_hour = $2
			  FROM late l
			 WHERE s.last_hour = $3 AND s.object_id = l.object_id
			   AND s.quantity = l.quantity AND s.state_id = l.state_id AND s.names_id = l.names_id
			RETURNING s.object_id
		), ins AS (
			INSERT INTO spans (object_id, first_hour, last_hour, quantity, state_id, names_id)
			SELECT l.object_id, $2, $2, l.quantity, l.state_id, l.names_id
			  FROM late l
			 WHERE l.object_id NOT IN (SELECT object_id FROM ext)
			   AND NOT EXISTS (SELECT 1 FROM spans c WHERE c.last_hour >= $2 AND c.object_id = l.object_id AND c.first_hour <= $2)
			RETURNING 1
		)
		SELECT (SELECT count(*) FROM ext), (SELECT count(*) FROM ins)`, productID, hour, prev).Scan(&extended, &inserted)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("filing a late hour: %w", err)
	}
	// The span now ending at H joins the object's latest span when that
	// starts at H+1 in the same state...
	tag, err := tx.Exec(ctx, `
		WITH j AS (
			DELETE FROM spans c
			 USING merge_obs o, span_objects x
			 WHERE x.product_id = $1 AND x.metric = o.metric AND x.object_key = o.object_key AND x.first_hour = $3
			   AND c.last_hour = $2 AND c.object_id = x.id
			   AND c.quantity = x.quantity AND c.state_id = x.state_id AND c.names_id = x.names_id
			RETURNING c.object_id, c.first_hour
		)
		UPDATE span_objects x SET first_hour = j.first_hour FROM j WHERE x.id = j.object_id`, productID, hour, next)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("joining a late hour: %w", err)
	}
	joined = int(tag.RowsAffected())
	// ... or a closed span starting at H+1 in the same state.
	tag, err = tx.Exec(ctx, `
		WITH n AS (
			DELETE FROM spans n
			 USING merge_obs o, span_objects x, spans c
			 WHERE x.product_id = $1 AND x.metric = o.metric AND x.object_key = o.object_key AND x.first_hour > $3
			   AND n.last_hour >= $3 AND n.first_hour = $3 AND n.object_id = x.id
			   AND c.last_hour = $2 AND c.object_id = x.id
			   AND c.quantity = n.quantity AND c.state_id = n.state_id AND c.names_id = n.names_id
			RETURNING n.object_id, n.last_hour
		)
		UPDATE spans c SET last_hour = n.last_hour FROM n WHERE c.last_hour = $2 AND c.object_id = n.object_id`, productID, hour, next)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("joining a late hour: %w", err)
	}
	joined += int(tag.RowsAffected())
	return extended, inserted, joined, nil
}

// Span is one span of an object (a row of the usage_spans view).
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

// ImportSpans files in bulk the spans that query returns, with the columns
// of the usage_spans view (product_id, metric, object_key, first_hour,
// last_hour, quantity, unit, edition, dims jsonb), for objects not stored
// yet: the latest span of each object becomes its latest, the others its
// closed spans, the dims stored once. It is what INSERT INTO usage_spans
// does span by span (a trigger per row), in five statements: for a
// provider's history written at once (benchmarks, imports). It returns the
// number of spans filed.
func (s *Store) ImportSpans(ctx context.Context, query string, args ...any) (int64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `CREATE TEMP TABLE import_spans ON COMMIT DROP AS
		SELECT q.product_id, q.metric, q.object_key, q.first_hour, q.last_hour, q.quantity,
		       span_state_hash(q.unit, q.edition, span_place(q.dims)) AS state_hash, q.unit, q.edition, span_place(q.dims) AS place,
		       span_names_hash(span_own(q.dims)) AS names_hash, span_own(q.dims) AS own,
		       row_number() OVER (PARTITION BY q.product_id, q.metric, q.object_key ORDER BY q.first_hour DESC) AS latest
		  FROM (`+query+`) AS q(product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims)`, args...)
	if err != nil {
		return 0, fmt.Errorf("importing spans: %w", err)
	}
	n := tag.RowsAffected()
	for _, q := range []string{
		`INSERT INTO span_states (hash, unit, edition, dims)
		 SELECT DISTINCT ON (state_hash) state_hash, unit, edition, place FROM import_spans ORDER BY state_hash
		 ON CONFLICT (hash) DO NOTHING`,
		`INSERT INTO span_names (hash, dims)
		 SELECT DISTINCT ON (names_hash) names_hash, own FROM import_spans ORDER BY names_hash
		 ON CONFLICT (hash) DO NOTHING`,
		`INSERT INTO span_objects (product_id, metric, object_key, first_hour, last_hour, quantity, state_id, names_id)
		 SELECT i.product_id, i.metric, i.object_key, i.first_hour, i.last_hour, i.quantity, st.id, nm.id
		   FROM import_spans i JOIN span_states st ON st.hash = i.state_hash JOIN span_names nm ON nm.hash = i.names_hash
		  WHERE i.latest = 1
		  ORDER BY i.product_id, i.metric, i.object_key`,
		`INSERT INTO spans (object_id, first_hour, last_hour, quantity, state_id, names_id)
		 SELECT o.id, i.first_hour, i.last_hour, i.quantity, st.id, nm.id
		   FROM import_spans i
		   JOIN span_objects o ON o.product_id = i.product_id AND o.metric = i.metric AND o.object_key = i.object_key
		   JOIN span_states st ON st.hash = i.state_hash JOIN span_names nm ON nm.hash = i.names_hash
		  WHERE i.latest > 1
		  ORDER BY i.last_hour, o.id`,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return 0, fmt.Errorf("importing spans: %w", err)
		}
	}
	return n, tx.Commit(ctx)
}
