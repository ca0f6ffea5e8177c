package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
	"github.com/usagemeter/usagemeter/report"
)

// verifyError is a bundle that failed verification (422).
type verifyError struct{ msg string }

func (e *verifyError) Error() string { return e.msg }

// conflictError is a version received before with other bytes (409).
type conflictError struct{ msg string }

func (e *conflictError) Error() string { return e.msg }

// line is one Monthly_Usage.tsv row of a bundle.
type line struct {
	product, edition, metric, unit, quantity, host, version, customer, identity string
}

// receive verifies and stores an authenticated upload: the same version
// with the same bytes again is acknowledged as a duplicate; a verified
// version replaces the earlier ones of its appliance and month.
func (r *Receiver) receive(ctx context.Context, s sender, month string, version int, sha string, body []byte) (protocol.Ack, int, error) {
	return r.receiveOnce(ctx, s, month, version, sha, body, false)
}

func (r *Receiver) receiveOnce(ctx context.Context, s sender, month string, version int, sha string, body []byte, retried bool) (protocol.Ack, int, error) {
	ack := protocol.Ack{ApplianceID: s.id, Month: month, Version: version, SHA256: sha}
	var prevSHA, prevState, prevErr string
	err := r.Pool.QueryRow(ctx, `SELECT sha256, state, error FROM receiver_bundles WHERE appliance = $1 AND month = $2 AND version = $3`,
		s.ref, month, version).Scan(&prevSHA, &prevState, &prevErr)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return ack, 0, err
	case prevSHA != sha:
		return ack, 0, &conflictError{fmt.Sprintf("version %d of %s was received before with SHA-256 %s: a new bundle needs a new version", version, month, prevSHA)}
	case prevState == stateFailed:
		return ack, 0, &verifyError{prevErr}
	default:
		ack.State, ack.Duplicate = stateVerified, true
		r.Log.Info("bundle received again (idempotent)", "appliance", s.id, "month", month, "version", version)
		return ack, 200, nil
	}

	man, lines, verr := r.verify(s, month, version, body)
	now := r.now()
	tx, err := r.Pool.Begin(ctx)
	if err != nil {
		return ack, 0, err
	}
	defer tx.Rollback(ctx)
	if verr != nil {
		msg := fmt.Sprintf("bundle %s version %d of appliance %s failed verification: %v", month, version, s.id, verr)
		if _, err := tx.Exec(ctx, `INSERT INTO receiver_bundles (appliance, month, version, sha256, size, received_at, state, error, data)
			VALUES ($1, $2, $3, $4, $5, $6, 'failed', $7, $8) ON CONFLICT DO NOTHING`, s.ref, month, version, sha, len(body), now, msg, body); err != nil {
			return ack, 0, err
		}
		r.audit(ctx, tx, s.id, month, "verification_failed", msg)
		if err := tx.Commit(ctx); err != nil {
			return ack, 0, err
		}
		r.Log.Error("bundle failed verification", "appliance", s.id, "month", month, "version", version, "err", verr)
		if err := r.raiseFailed(ctx, s.id, month, version, msg); err != nil {
			r.Log.Error("raising the verification alert", "err", err)
		}
		return ack, 0, &verifyError{msg}
	}
	manJSON, _ := json.Marshal(man)
	var id int64
	if err := tx.QueryRow(ctx, `SELECT nextval(pg_get_serial_sequence('receiver_bundles', 'id'))`).Scan(&id); err != nil {
		return ack, 0, err
	}
	// COPY, not INSERT: the bundle, up to MaxBundle, is encoded into one
	// buffer instead of a parameter and then a message.
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"receiver_bundles"},
		[]string{"id", "appliance", "month", "version", "sha256", "size", "received_at", "state", "manifest", "data", "contract"},
		pgx.CopyFromRows([][]any{{id, s.ref, month, version, sha, len(body), now, stateVerified, manJSON, body, man.ContractID}})); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" && !retried {
			// The same version arrived twice at once: the other one is
			// stored; answer as to a re-upload.
			tx.Rollback(ctx)
			return r.receiveOnce(ctx, s, month, version, sha, body, true)
		}
		return ack, 0, err
	}
	rows := make([][]any, len(lines))
	for i, l := range lines {
		rows[i] = []any{id, l.product, l.edition, l.metric, l.unit, l.quantity, l.host, l.version, l.customer, l.identity}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"receiver_lines"},
		[]string{"bundle", "product", "edition", "metric", "unit", "quantity", "product_host", "product_version", "customer", "identity"},
		pgx.CopyFromRows(rows)); err != nil {
		return ack, 0, fmt.Errorf("storing the bundle's lines: %w", err)
	}
	// Replacements: this version replaces the earlier ones; a later one,
	// received before (out of order), replaces this one.
	rs, err := tx.Query(ctx, `UPDATE receiver_bundles SET replaced_by = $1
		WHERE appliance = $2 AND month = $3 AND state = 'verified' AND replaced_by IS NULL AND version < $4 RETURNING version`, id, s.ref, month, version)
	if err != nil {
		return ack, 0, err
	}
	replaced, err := pgx.CollectRows(rs, pgx.RowTo[int32])
	if err != nil {
		return ack, 0, err
	}
	for _, v := range replaced {
		r.audit(ctx, tx, s.id, month, "replaced", fmt.Sprintf("version %d replaced by version %d (SHA-256 %s)", v, version, sha))
	}
	if _, err := tx.Exec(ctx, `UPDATE receiver_bundles SET replaced_by = (SELECT min(id) FROM receiver_bundles
			WHERE appliance = $2 AND month = $3 AND state = 'verified' AND version > $4)
		WHERE id = $1 AND EXISTS (SELECT 1 FROM receiver_bundles WHERE appliance = $2 AND month = $3 AND state = 'verified' AND version > $4)`,
		id, s.ref, month, version); err != nil {
		return ack, 0, err
	}
	detail := fmt.Sprintf("version %d, SHA-256 %s, %d lines", version, sha, len(lines))
	if due := r.due(month); now.After(due) {
		detail += fmt.Sprintf("; late (due %s)", due.Format(time.DateOnly))
	}
	r.audit(ctx, tx, s.id, month, "received", detail)
	if err := tx.Commit(ctx); err != nil {
		return ack, 0, err
	}
	r.Log.Info("bundle received and verified", "appliance", s.id, "month", month, "version", version, "lines", len(lines))
	if err := r.resolveMonth(ctx, s.ref, s.id, month); err != nil {
		r.Log.Error("resolving alerts", "err", err)
	}
	ack.State = stateVerified
	return ack, 201, nil
}

// verify decrypts the bundle with the aggregator keys, checks its OpenPGP
// signature by the appliance's enrolled report key and its manifest, and
// reads its Monthly_Usage.tsv.
func (r *Receiver) verify(s sender, month string, version int, body []byte) (*report.Manifest, []line, error) {
	signers, err := openpgp.ReadArmoredKeyRing(strings.NewReader(s.reportKey))
	if err != nil {
		return nil, nil, fmt.Errorf("the enrolled report key: %w", err)
	}
	var (
		man   *report.Manifest
		files []report.File
	)
	// The bundle streams from decryption through the manifest check; only
	// Monthly_Usage.tsv is held.
	_, err = report.DecryptAndVerifyTo(bytes.NewReader(body), r.Keys, signers, func(plain io.Reader) error {
		var err error
		man, files, err = report.VerifyBundleStream(plain, func(name string) bool { return name == report.FileMonthly })
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	switch {
	case man.ApplianceID != s.id:
		return nil, nil, fmt.Errorf("the manifest names appliance %q, the upload %q", man.ApplianceID, s.id)
	case man.Month != month:
		return nil, nil, fmt.Errorf("the manifest is of month %s, the upload says %s", man.Month, month)
	case man.Version != version:
		return nil, nil, fmt.Errorf("the manifest is version %d, the upload says %d", man.Version, version)
	}
	fleet := map[string][]string{}
	for _, f := range man.Fleet {
		fleet[f.Host] = append(fleet[f.Host], f.Fingerprint)
	}
	identity := func(host string) string {
		fps := fleet[host]
		if len(fps) == 0 {
			return "host:" + host
		}
		sort.Strings(fps)
		return "fp:" + strings.Join(fps, ",")
	}
	var lines []line
	for _, f := range files {
		if f.Name != report.FileMonthly {
			continue
		}
		for i, row := range strings.Split(strings.TrimSuffix(string(f.Data), "\n"), "\n") {
			if i == 0 || row == "" {
				continue // the header
			}
			c := strings.Split(row, "\t")
			if len(c) != 8 {
				return nil, nil, fmt.Errorf("%s line %d: %d fields, want 8", report.FileMonthly, i+1, len(c))
			}
			lines = append(lines, line{product: c[0], edition: c[1], metric: c[2], unit: c[3], quantity: c[4], host: c[5], version: c[6], customer: c[7], identity: identity(c[5])})
		}
	}
	return man, lines, nil
}

// Bundle states.
const (
	stateVerified = "verified"
	stateFailed   = "failed"
)

// due is when month's report is alerted missing: DueDay of the next month,
// 00:00 UTC.
func (r *Receiver) due(month string) time.Time {
	t, err := time.Parse("2006-01", month)
	if err != nil {
		return time.Time{}
	}
	return t.AddDate(0, 1, r.DueDay-1)
}
