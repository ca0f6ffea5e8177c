// Package receiver is the second role of the usagemeter binary
// (`usagemeter receiver serve`): an HTTPS service that enrols appliances,
// accepts their signed report uploads and hourly heartbeats, decrypts and
// verifies each bundle with the aggregator key it holds, and merges the
// month across appliances into one provider report, billing a vCenter that
// two appliances meter once. Its protocol is docs/RECEIVER.md; the shared
// part (token, signatures, fingerprints) is the protocol package.
//
// The receiver keeps its tables in its own migration set (migrations/)
// beside the appliance schema, whose mail outbox and alerts it uses: an
// alert (appliance silent, month missing, bundle failed verification) is a
// row in alerts with its mail in the outbox, sent by the outbox worker.
package receiver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usagemeter/usagemeter/internal/receiver/migrations"
	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/web"
	"github.com/usagemeter/usagemeter/internal/web/auth"
)

// Defaults of the receiver section.
const (
	DefaultSilentAfter = 2 * time.Hour
	DefaultDueDay      = 3
	DefaultMaxBundle   = 1 << 30
	DefaultTokenTTL    = 7 * 24 * time.Hour
)

// Receiver is the service over one database.
type Receiver struct {
	Pool  *pgxpool.Pool
	Store *store.Store // outbox and alerts
	// Keys are the aggregator's private keys: bundles are decrypted with
	// them.
	Keys       openpgp.EntityList
	Thumbprint string // of the receiver's certificate, put into tokens
	AdminToken string // a bearer token of the fleet API besides the accounts' sessions and API tokens; "" = none
	AlertTo    []string
	// SilentAfter without a heartbeat an appliance is alerted silent.
	SilentAfter time.Duration
	// DueDay of the next month a month's report is alerted missing.
	DueDay    int
	MaxBundle int64
	// Auth shapes the web console's sessions and lock-out (the http.*
	// settings of the config); its cookie is SessionCookie unless set.
	Auth    auth.Config
	Version string // the binary's, in the console's footer
	Log     *slog.Logger
	Now     func() time.Time

	id       string
	fleetKey []byte
}

// Open migrates the receiver schema (the appliance schema must be migrated
// already) and loads the receiver's identity, created at first use.
func Open(ctx context.Context, r *Receiver) error {
	if r.Pool == nil || r.Store == nil {
		return errors.New("receiver: no database")
	}
	if r.SilentAfter <= 0 {
		r.SilentAfter = DefaultSilentAfter
	}
	if r.DueDay <= 0 {
		r.DueDay = DefaultDueDay
	}
	if r.MaxBundle <= 0 {
		r.MaxBundle = DefaultMaxBundle
	}
	if r.Log == nil {
		r.Log = slog.New(slog.DiscardHandler)
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	conn, err := r.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	err = migrations.Apply(ctx, conn.Conn())
	conn.Release()
	if err != nil {
		return err
	}
	var id [16]byte
	key := make([]byte, 32)
	if _, err := rand.Read(id[:]); err != nil {
		return err
	}
	if _, err := rand.Read(key); err != nil {
		return err
	}
	_, err = r.Pool.Exec(ctx, `INSERT INTO receiver_identity (id, fleet_key) VALUES ($1, $2) ON CONFLICT DO NOTHING`, hex.EncodeToString(id[:]), key)
	if err != nil {
		return err
	}
	return r.Pool.QueryRow(ctx, `SELECT id, fleet_key FROM receiver_identity`).Scan(&r.id, &r.fleetKey)
}

// ID is the receiver's identity.
func (r *Receiver) ID() string { return r.id }

func (r *Receiver) now() time.Time { return r.Now().UTC() }

// audit records an event.
func (r *Receiver) audit(ctx context.Context, q execer, appliance, month, event, detail string) {
	if _, err := q.Exec(ctx, `INSERT INTO receiver_audit (at, appliance, month, event, detail) VALUES ($1, $2, $3, $4, $5)`,
		r.now(), appliance, month, event, detail); err != nil {
		r.Log.Error("receiver audit", "event", event, "err", err)
	}
}

// CreateToken records a new one-time enrolment token valid for ttl and
// returns it as the admin hands it over.
func (r *Receiver) CreateToken(ctx context.Context, note string, ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	tok, text, err := protocol.NewToken(r.Thumbprint)
	if err != nil {
		return "", time.Time{}, err
	}
	now := r.now()
	exp := now.Add(ttl)
	if _, err := r.Pool.Exec(ctx, `INSERT INTO receiver_tokens (secret_sha256, note, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
		protocol.HashSecret(tok.Secret), note, now, exp); err != nil {
		return "", time.Time{}, err
	}
	r.audit(ctx, r.Pool, "", "", "token_created", note)
	return text, exp, nil
}

// Appliance is an enrolled appliance as listed.
type Appliance struct {
	Ref           int64      `json:"-"`
	ID            string     `json:"appliance_id"`
	Version       string     `json:"version"`
	EnrolledAt    time.Time  `json:"enrolled_at"`
	RevokedAt     *time.Time `json:"revoked_at"`
	LastHeartbeat *time.Time `json:"last_heartbeat"`
}

// Appliances lists the enrolled appliances, in enrolment order.
func (r *Receiver) Appliances(ctx context.Context) ([]Appliance, error) {
	rows, err := r.Pool.Query(ctx, `SELECT id, appliance_id, version, enrolled_at, revoked_at, last_heartbeat FROM receiver_appliances ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Appliance, error) {
		var a Appliance
		err := row.Scan(&a.Ref, &a.ID, &a.Version, &a.EnrolledAt, &a.RevokedAt, &a.LastHeartbeat)
		return a, err
	})
}

// Revoke refuses every later upload and heartbeat of an appliance (it may
// enrol again with a new token). Its stored bundles stay.
func (r *Receiver) Revoke(ctx context.Context, applianceID string) error {
	tag, err := r.Pool.Exec(ctx, `UPDATE receiver_appliances SET revoked_at = $2 WHERE appliance_id = $1 AND revoked_at IS NULL`, applianceID, r.now())
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("no enrolled appliance %q that is not revoked already (see receiver appliances list)", applianceID)
	}
	r.audit(ctx, r.Pool, applianceID, "", "revoked", "")
	r.Log.Info("appliance revoked", "appliance", applianceID)
	return nil
}

// Handler serves the protocol endpoints, the fleet API and, at /, the
// fleet console.
func (r *Receiver) Handler() http.Handler {
	am := r.authManager()
	c, err := r.console(am)
	if err != nil {
		panic(err) // the templates are embedded: a parse error is a build error, caught by the tests
	}
	// The fleet API answers to an account's session, like the console, so
	// it has the console's protection too (web.Protect: security headers,
	// no caching, a state-changing request from another origin refused).
	api := func(h http.HandlerFunc) http.Handler {
		return web.Protect(true, web.DefaultMaxBody, "receiver", r.apiAuth(am, h))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+protocol.PathEnrol, r.enrol)
	mux.HandleFunc("POST "+protocol.PathUpload, r.upload)
	mux.HandleFunc("POST "+protocol.PathHeartbeat, r.heartbeat)
	mux.Handle("GET "+protocol.PathFleet, api(r.fleetAPI))
	mux.Handle("GET "+protocol.PathMonths+"{month}", api(r.monthAPI))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, req *http.Request) {
		if err := r.Pool.Ping(req.Context()); err != nil {
			http.Error(w, `{"status":"database unreachable"}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok","role":"receiver"}` + "\n"))
	})
	mux.Handle("/", c)
	return mux
}
