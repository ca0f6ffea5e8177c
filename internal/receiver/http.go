package receiver

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/jackc/pgx/v5"

	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
	"github.com/usagemeter/usagemeter/internal/web/auth"
)

var (
	monthRE = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])$`)
	idRE    = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
)

// refuse answers an error and logs it with the client's address.
func (r *Receiver) refuse(w http.ResponseWriter, req *http.Request, code int, appliance, msg string) {
	r.Log.Warn("receiver refused a request", "path", req.URL.Path, "remote", req.RemoteAddr, "appliance", appliance, "status", code, "reason", msg)
	http.Error(w, msg, code)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// enrol handles POST /api/v1/enrol.
func (r *Receiver) enrol(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	var er protocol.EnrolRequest
	if err := json.NewDecoder(io.LimitReader(req.Body, 1<<20)).Decode(&er); err != nil {
		r.refuse(w, req, http.StatusBadRequest, "", "enrolment: not a JSON enrolment request")
		return
	}
	if !idRE.MatchString(er.ApplianceID) {
		r.refuse(w, req, http.StatusBadRequest, "", "enrolment: appliance_id missing or not an id")
		return
	}
	if len(er.UploadKey) != ed25519.PublicKeySize {
		r.refuse(w, req, http.StatusBadRequest, er.ApplianceID, "enrolment: upload_key is not an Ed25519 public key")
		return
	}
	if ents, err := openpgp.ReadArmoredKeyRing(strings.NewReader(er.ReportKey)); err != nil || len(ents) != 1 {
		r.refuse(w, req, http.StatusBadRequest, er.ApplianceID, "enrolment: report_key is not one armored OpenPGP public key")
		return
	}
	now := r.now()
	tx, err := r.Pool.Begin(ctx)
	if err != nil {
		r.fail(w, err)
		return
	}
	defer tx.Rollback(ctx)
	var tokenID int64
	err = tx.QueryRow(ctx, `UPDATE receiver_tokens SET used_at = $2, used_by = $3
		WHERE secret_sha256 = $1 AND used_at IS NULL AND expires_at > $2 RETURNING id`,
		protocol.HashSecret(er.Token), now, er.ApplianceID).Scan(&tokenID)
	if errors.Is(err, pgx.ErrNoRows) {
		r.audit(ctx, r.Pool, er.ApplianceID, "", "enrol_refused", "token unknown, used or expired; from "+req.RemoteAddr)
		r.refuse(w, req, http.StatusUnauthorized, er.ApplianceID, "enrolment token unknown, already used or expired: create a new one with usagemeter receiver token create")
		return
	}
	if err != nil {
		r.fail(w, err)
		return
	}
	var again bool
	err = tx.QueryRow(ctx, `INSERT INTO receiver_appliances (appliance_id, upload_key, report_key, version, enrolled_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (appliance_id) DO UPDATE SET upload_key = $2, report_key = $3, version = $4, enrolled_at = $5, revoked_at = NULL
		RETURNING xmax <> 0`, er.ApplianceID, er.UploadKey, er.ReportKey, er.Version, now).Scan(&again)
	if err != nil {
		r.fail(w, err)
		return
	}
	event := "enrolled"
	if again {
		event = "enrolled_again" // a new key replaces the old one
	}
	r.audit(ctx, tx, er.ApplianceID, "", event, fmt.Sprintf("token %d, version %s, from %s", tokenID, er.Version, req.RemoteAddr))
	if err := tx.Commit(ctx); err != nil {
		r.fail(w, err)
		return
	}
	r.Log.Info("appliance enrolled", "appliance", er.ApplianceID, "again", again)
	writeJSON(w, http.StatusCreated, protocol.EnrolResponse{ReceiverID: r.id, FleetKey: r.fleetKey, EnrolledAt: now})
}

func (r *Receiver) fail(w http.ResponseWriter, err error) {
	r.Log.Error("receiver", "err", err)
	http.Error(w, "internal error (see the receiver's log)", http.StatusInternalServerError)
}

// sender is the enrolled appliance a signed request names.
type sender struct {
	ref       int64
	id        string
	uploadKey ed25519.PublicKey
	reportKey string
}

// authenticate finds the appliance of a signed request and checks the
// signature over msg and the nonce (recorded, so a replay is refused). It
// answers the refusal itself and returns false.
func (r *Receiver) authenticate(w http.ResponseWriter, req *http.Request, msg func(appliance, ts, nonce string) []byte) (sender, bool) {
	ctx := req.Context()
	id := req.Header.Get(protocol.HeaderAppliance)
	var s sender
	var isRevoked bool
	err := r.Pool.QueryRow(ctx, `SELECT id, appliance_id, upload_key, report_key, revoked_at IS NOT NULL FROM receiver_appliances WHERE appliance_id = $1`, id).
		Scan(&s.ref, &s.id, &s.uploadKey, &s.reportKey, &isRevoked)
	if errors.Is(err, pgx.ErrNoRows) {
		r.audit(ctx, r.Pool, clip(id), "", "refused_unknown", req.URL.Path+" from "+req.RemoteAddr)
		r.refuse(w, req, http.StatusUnauthorized, clip(id), "unknown appliance: enrol it first (usagemeter enrol)")
		return s, false
	}
	if err != nil {
		r.fail(w, err)
		return s, false
	}
	if isRevoked {
		r.audit(ctx, r.Pool, s.id, "", "refused_revoked", req.URL.Path+" from "+req.RemoteAddr)
		r.refuse(w, req, http.StatusForbidden, s.id, "appliance revoked: it may enrol again with a new token")
		return s, false
	}
	ts, nonce := req.Header.Get(protocol.HeaderTimestamp), req.Header.Get(protocol.HeaderNonce)
	if err := protocol.CheckSigned(s.uploadKey, msg(s.id, ts, nonce), ts, nonce, req.Header.Get(protocol.HeaderSignature), r.now()); err != nil {
		r.audit(ctx, r.Pool, s.id, "", "refused_signature", err.Error())
		r.refuse(w, req, http.StatusUnauthorized, s.id, "request not authenticated: "+err.Error())
		return s, false
	}
	tag, err := r.Pool.Exec(ctx, `INSERT INTO receiver_nonces (appliance, nonce, seen_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, s.ref, nonce, r.now())
	if err != nil {
		r.fail(w, err)
		return s, false
	}
	if tag.RowsAffected() == 0 {
		r.audit(ctx, r.Pool, s.id, "", "refused_replay", "nonce "+nonce+" seen before; "+req.URL.Path+" from "+req.RemoteAddr)
		r.refuse(w, req, http.StatusConflict, s.id, "replayed request: this nonce was used before")
		return s, false
	}
	return s, true
}

// clip keeps a header value short enough to log.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// upload handles POST /api/v1/upload: authenticated and checked before
// anything is stored.
func (r *Receiver) upload(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	month, sha := req.Header.Get(protocol.HeaderMonth), strings.ToLower(req.Header.Get(protocol.HeaderSHA256))
	version, verr := strconv.Atoi(req.Header.Get(protocol.HeaderVersion))
	s, ok := r.authenticate(w, req, func(appliance, ts, nonce string) []byte {
		return protocol.UploadMessage(appliance, month, version, sha, ts, nonce)
	})
	if !ok {
		return
	}
	if !monthRE.MatchString(month) || verr != nil || version < 1 {
		r.refuse(w, req, http.StatusBadRequest, s.id, "upload: month (YYYY-MM) or version missing")
		return
	}
	// The buffer is sized by Content-Length (the sender is authenticated;
	// MaxBundle caps it): read whole without growing through copies.
	var buf bytes.Buffer
	if n := req.ContentLength; n > 0 && n <= r.MaxBundle {
		buf.Grow(int(n) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(req.Body, r.MaxBundle+1)); err != nil {
		r.refuse(w, req, http.StatusBadRequest, s.id, "upload: reading the bundle: "+err.Error())
		return
	}
	body := buf.Bytes()
	if int64(len(body)) > r.MaxBundle {
		r.refuse(w, req, http.StatusRequestEntityTooLarge, s.id, fmt.Sprintf("upload: bundle larger than receiver.max_bundle_bytes (%d)", r.MaxBundle))
		return
	}
	sum := sha256.Sum256(body)
	if got := hex.EncodeToString(sum[:]); subtle.ConstantTimeCompare([]byte(got), []byte(sha)) != 1 {
		r.audit(ctx, r.Pool, s.id, month, "refused_checksum", fmt.Sprintf("version %d: body SHA-256 %s, signed %s", version, got, clip(sha)))
		r.refuse(w, req, http.StatusBadRequest, s.id, "upload: the bundle's SHA-256 is not the one signed (damaged in transit?)")
		return
	}
	ack, code, err := r.receive(ctx, s, month, version, sha, body)
	if err != nil {
		var ve *verifyError
		if errors.As(err, &ve) {
			r.refuse(w, req, http.StatusUnprocessableEntity, s.id, err.Error())
			return
		}
		var ce *conflictError
		if errors.As(err, &ce) {
			r.refuse(w, req, http.StatusConflict, s.id, err.Error())
			return
		}
		r.fail(w, err)
		return
	}
	writeJSON(w, code, ack)
}

// heartbeat handles POST /api/v1/heartbeat.
func (r *Receiver) heartbeat(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		r.refuse(w, req, http.StatusBadRequest, "", "heartbeat: "+err.Error())
		return
	}
	sum := sha256.Sum256(body)
	s, ok := r.authenticate(w, req, func(appliance, ts, nonce string) []byte {
		return protocol.HeartbeatMessage(appliance, hex.EncodeToString(sum[:]), ts, nonce)
	})
	if !ok {
		return
	}
	var hb protocol.Heartbeat
	if err := json.Unmarshal(body, &hb); err != nil || hb.ApplianceID != s.id {
		r.refuse(w, req, http.StatusBadRequest, s.id, "heartbeat: not a heartbeat of this appliance")
		return
	}
	if _, err := r.Pool.Exec(ctx, `UPDATE receiver_appliances SET last_heartbeat = $2, version = $3, heartbeat = $4 WHERE id = $1`,
		s.ref, r.now(), hb.Version, body); err != nil {
		r.fail(w, err)
		return
	}
	if err := r.resolve(ctx, silentKey(s.id), "appliance "+s.id+" is heard from again"); err != nil {
		r.Log.Error("resolving the silent alert", "appliance", s.id, "err", err)
	}
	w.WriteHeader(http.StatusNoContent)
}

// apiAuth guards the fleet API. It accepts the bearer
// receiver.admin_token (when set), and an account of the console as the
// appliance's /api/v1 does (auth.Manager): one of its API tokens (umt_, the
// API tokens page) or its session cookie. Anything else is refused with 401
// and a JSON error; a revoked token too. The API only reads: no request of
// it changes state (see MergeEach).
func (r *Receiver) apiAuth(am *auth.Manager, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		scheme, got, _ := strings.Cut(req.Header.Get("Authorization"), " ")
		if strings.EqualFold(scheme, "Bearer") && r.AdminToken != "" &&
			subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(r.AdminToken)) == 1 {
			h(w, req.WithContext(auth.WithUser(req.Context(), auth.User{Username: "receiver.admin_token", Via: "admin_token", Remote: auth.ClientIP(req)})))
			return
		}
		u, err := am.Authenticate(req)
		if err != nil {
			if !errors.Is(err, auth.ErrUnauthenticated) && !errors.Is(err, auth.ErrSessionExpired) && !errors.Is(err, auth.ErrTokenRevoked) && !errors.Is(err, auth.ErrBadToken) {
				r.Log.Error("fleet API: authenticating", "err", err)
				auth.WriteError(w, http.StatusServiceUnavailable, "the database is unavailable: try again later")
				return
			}
			r.Log.Warn("receiver refused a request", "path", req.URL.Path, "remote", req.RemoteAddr, "status", http.StatusUnauthorized, "reason", err.Error())
			w.Header().Set("WWW-Authenticate", `Bearer realm="usagemeter receiver"`)
			auth.WriteError(w, http.StatusUnauthorized, "fleet API: "+err.Error())
			return
		}
		h(w, req.WithContext(auth.WithUser(req.Context(), u)))
	}
}

func (r *Receiver) fleetAPI(w http.ResponseWriter, req *http.Request) {
	f, err := r.Fleet(req.Context())
	if err != nil {
		r.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

func (r *Receiver) monthAPI(w http.ResponseWriter, req *http.Request) {
	month := req.PathValue("month")
	if !monthRE.MatchString(month) {
		auth.WriteError(w, http.StatusBadRequest, "month: want YYYY-MM")
		return
	}
	m, err := r.Merge(req.Context(), month) // a pure read
	if err != nil {
		r.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}
