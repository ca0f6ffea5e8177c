// Package protocol is the appliance ↔ receiver protocol of docs/RECEIVER.md:
// the one-time enrolment token (which carries the receiver's certificate
// thumbprint, so that the appliance pins it), the appliance's enrolment (its
// Ed25519 upload key, kept 0600 in data_dir, the receiver's URL and pinned
// certificate, the fleet key), the signed upload and heartbeat messages, and
// the fleet fingerprint of a product instance. Both the appliance (report,
// the enrol command) and the receiver import it; it imports neither.
package protocol

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// Endpoints of the receiver.
const (
	PathEnrol     = "/api/v1/enrol"
	PathUpload    = "/api/v1/upload"
	PathHeartbeat = "/api/v1/heartbeat"
	PathFleet     = "/api/v1/fleet"
	PathMonths    = "/api/v1/months/" // + YYYY-MM: the merged provider month
)

// Headers of a signed request. Appliance, month, version and SHA-256 are
// the ones the HTTPS upload channel always sent.
const (
	HeaderAppliance = "X-Usagemeter-Appliance"
	HeaderMonth     = "X-Usagemeter-Month"
	HeaderVersion   = "X-Usagemeter-Version"
	HeaderSHA256    = "X-Usagemeter-SHA256"
	HeaderTimestamp = "X-Usagemeter-Timestamp" // RFC 3339, UTC
	HeaderNonce     = "X-Usagemeter-Nonce"     // 32 hex digits, never reused
	HeaderSignature = "X-Usagemeter-Signature" // base64 Ed25519 signature of the message
)

// MaxSkew is how far a request's timestamp may be from the receiver's
// clock. Nonces are remembered at least this long, so a replay is refused
// either by its nonce or by its age.
const MaxSkew = 10 * time.Minute

// tokenPrefix starts every enrolment token (format version 1).
const tokenPrefix = "umr1"

// Token is a parsed enrolment token: "umr1.<secret>.<thumbprint>", the
// secret 32 random bytes in base64url and the receiver certificate's
// SHA-256 thumbprint in 64 hex digits. The receiver keeps only the
// secret's SHA-256.
type Token struct {
	Secret     string
	Thumbprint string // as tlsutil.Thumbprint writes it
}

// NewToken returns a new token for a receiver whose certificate has
// thumbprint.
func NewToken(thumbprint string) (Token, string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Token{}, "", err
	}
	t := Token{Secret: base64.RawURLEncoding.EncodeToString(b[:]), Thumbprint: tlsutil.Normalize(thumbprint)}
	return t, t.String(), nil
}

// String is the token as the admin copies it.
func (t Token) String() string {
	return tokenPrefix + "." + t.Secret + "." + strings.ToLower(strings.ReplaceAll(t.Thumbprint, ":", ""))
}

// ParseToken reads a token; the error says what is wrong without echoing it.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 || parts[0] != tokenPrefix {
		return Token{}, errors.New("not an enrolment token (umr1.<secret>.<thumbprint>, as `usagemeter receiver token create` prints it)")
	}
	if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err != nil || len(b) != 32 {
		return Token{}, errors.New("enrolment token: the secret part is damaged")
	}
	if b, err := hex.DecodeString(parts[2]); err != nil || len(b) != sha256.Size {
		return Token{}, errors.New("enrolment token: the thumbprint part is damaged")
	}
	return Token{Secret: parts[1], Thumbprint: tlsutil.Normalize(parts[2])}, nil
}

// HashSecret is what the receiver stores of a token's secret.
func HashSecret(secret string) string {
	s := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(s[:])
}

// EnrolRequest is the body of POST /api/v1/enrol.
type EnrolRequest struct {
	Token       string `json:"token"` // the token's secret part only
	ApplianceID string `json:"appliance_id"`
	Version     string `json:"version"`
	UploadKey   []byte `json:"upload_key"` // Ed25519 public key
	// ReportKey is the appliance's armored OpenPGP public key, which
	// signs the encrypted bundles inside.
	ReportKey string `json:"report_key"`
}

// EnrolResponse is the receiver's answer to an enrolment.
type EnrolResponse struct {
	ReceiverID string `json:"receiver_id"`
	// FleetKey is the key of the fleet fingerprints (Fingerprint), the
	// same for every appliance of the receiver.
	FleetKey   []byte    `json:"fleet_key"`
	EnrolledAt time.Time `json:"enrolled_at"`
}

// Ack is the receiver's answer to an upload.
type Ack struct {
	ApplianceID string `json:"appliance_id"`
	Month       string `json:"month"`
	Version     int    `json:"version"`
	SHA256      string `json:"sha256"` // the bundle's checksum, as received
	State       string `json:"state"`  // verified
	Duplicate   bool   `json:"duplicate"`
}

// Heartbeat is the body of POST /api/v1/heartbeat: state, no usage, no names.
type Heartbeat struct {
	ApplianceID string           `json:"appliance_id"`
	Version     string           `json:"version"`
	SentAt      time.Time        `json:"sent_at"`
	Products    []ProductState   `json:"products"`
	OpenAlerts  []HeartbeatAlert `json:"open_alerts"`
}

// ProductState is one product's last successful hour (nil: none yet).
type ProductState struct {
	ID       int64      `json:"id"`
	Kind     string     `json:"kind"`
	Active   bool       `json:"active"`
	LastHour *time.Time `json:"last_hour"`
}

// HeartbeatAlert is an open alert, by kind (no error text, which may name
// hosts).
type HeartbeatAlert struct {
	Kind      string    `json:"kind"`
	ProductID int64     `json:"product_id,omitempty"`
	OpenedAt  time.Time `json:"opened_at"`
}

// UploadMessage is what an upload's signature covers.
func UploadMessage(appliance, month string, version int, sha, timestamp, nonce string) []byte {
	return []byte(strings.Join([]string{"usagemeter-upload/1", appliance, month, strconv.Itoa(version), strings.ToLower(sha), timestamp, nonce}, "\n"))
}

// HeartbeatMessage is what a heartbeat's signature covers (the body by its
// SHA-256).
func HeartbeatMessage(appliance, bodySHA, timestamp, nonce string) []byte {
	return []byte(strings.Join([]string{"usagemeter-heartbeat/1", appliance, strings.ToLower(bodySHA), timestamp, nonce}, "\n"))
}

// NewNonce returns 16 random bytes in hex.
func NewNonce() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// CheckSigned checks a signed request's timestamp (within MaxSkew of now),
// nonce form and signature over msg by pub. It does not remember the
// nonce: the receiver does, in its database.
func CheckSigned(pub ed25519.PublicKey, msg []byte, timestamp, nonce, signature string, now time.Time) error {
	ts, err := time.Parse(time.RFC3339, timestamp)
	if err != nil {
		return errors.New("timestamp missing or not RFC 3339")
	}
	if d := now.Sub(ts); d > MaxSkew || d < -MaxSkew {
		return fmt.Errorf("timestamp %s is more than %s from the receiver's clock", timestamp, MaxSkew)
	}
	if b, err := hex.DecodeString(nonce); err != nil || len(b) != 16 {
		return errors.New("nonce missing or not 32 hex digits")
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return errors.New("signature missing or damaged")
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, msg, sig) {
		return errors.New("signature does not verify with the enrolled key")
	}
	return nil
}

// Fingerprint is the fleet fingerprint of a product instance (a vCenter's
// instance UUID): HMAC-SHA256 under the receiver's fleet key, so that two
// appliances metering one vCenter give the receiver the same value whatever
// their anonymisation secrets, and nobody without the key can tell which
// vCenter it is.
func Fingerprint(fleetKey []byte, instanceID string) string {
	m := hmac.New(sha256.New, fleetKey)
	m.Write([]byte("usagemeter-fleet/1\x00" + strings.ToLower(strings.TrimSpace(instanceID))))
	return hex.EncodeToString(m.Sum(nil))
}
