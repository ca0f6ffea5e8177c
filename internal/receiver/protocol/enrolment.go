package protocol

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/usagemeter/usagemeter/internal/secretfile"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// Files of an enrolled appliance, in data_dir, both 0600.
const (
	StateFile = "receiver.json"       // receiver URL, pinned thumbprint, fleet key
	KeyFile   = "receiver-upload.key" // the Ed25519 upload key (PKCS#8 PEM)
)

// Enrolment is an appliance's enrolment with a receiver.
type Enrolment struct {
	URL         string    `json:"url"`        // https://host:port of the receiver
	Thumbprint  string    `json:"thumbprint"` // its certificate, pinned
	ApplianceID string    `json:"appliance_id"`
	ReceiverID  string    `json:"receiver_id"`
	FleetKey    []byte    `json:"fleet_key"`
	EnrolledAt  time.Time `json:"enrolled_at"`

	key ed25519.PrivateKey
	now func() time.Time
}

// Load reads the enrolment in dataDir; nil, nil when the appliance is not
// enrolled.
func Load(dataDir string) (*Enrolment, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the receiver enrolment: %w", err)
	}
	e := &Enrolment{}
	if err := json.Unmarshal(b, e); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dataDir, StateFile), err)
	}
	if e.key, err = loadOrCreateKey(filepath.Join(dataDir, KeyFile), false); err != nil {
		return nil, err
	}
	return e, nil
}

// loadOrCreateKey reads the upload key, creating it (0600) when create is set
// and it is missing.
func loadOrCreateKey(path string, create bool) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := secretfile.CreateExclusive(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
			return nil, fmt.Errorf("writing the upload key %s: %w", path, err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the upload key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an Ed25519 key", path)
	}
	return key, nil
}

// EnrolOptions are the inputs of Enrol.
type EnrolOptions struct {
	DataDir     string
	URL         string // the receiver, https://host:port
	Token       string // as `receiver token create` printed it
	ApplianceID string
	Version     string
	ReportKey   []byte // armored OpenPGP public key of the appliance
}

// Enrol registers the appliance with a receiver: the receiver's certificate
// must have the thumbprint the token carries; the upload key is created
// (0600) if missing; the enrolment is written to data_dir only when the
// receiver accepted it.
func Enrol(ctx context.Context, o EnrolOptions) (*Enrolment, error) {
	tok, err := ParseToken(o.Token)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(o.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, errors.New("--receiver: must be an https:// URL")
	}
	base := u.Scheme + "://" + u.Host
	key, err := loadOrCreateKey(filepath.Join(o.DataDir, KeyFile), true)
	if err != nil {
		return nil, err
	}
	e := &Enrolment{URL: base, Thumbprint: tok.Thumbprint, ApplianceID: o.ApplianceID, key: key}
	body, _ := json.Marshal(EnrolRequest{Token: tok.Secret, ApplianceID: o.ApplianceID, Version: o.Version,
		UploadKey: key.Public().(ed25519.PublicKey), ReportKey: string(o.ReportKey)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+PathEnrol, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	client := e.Client()
	defer client.CloseIdleConnections() // a one-off request: no idle connection left
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("enrolling with %s: %w", base, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("the receiver %s refused the enrolment: %s: %s", base, resp.Status, bytes.TrimSpace(rb))
	}
	var er EnrolResponse
	if err := json.Unmarshal(rb, &er); err != nil || len(er.FleetKey) < 16 {
		return nil, fmt.Errorf("the receiver %s answered the enrolment with something else than an enrolment", base)
	}
	e.ReceiverID, e.FleetKey, e.EnrolledAt = er.ReceiverID, er.FleetKey, er.EnrolledAt
	state, _ := json.MarshalIndent(e, "", "  ")
	path := filepath.Join(o.DataDir, StateFile)
	tmp := path + ".new"
	_ = os.Remove(tmp)
	if err := secretfile.CreateExclusive(tmp, append(state, '\n')); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	return e, nil
}

// Client is an HTTPS client that trusts only the pinned certificate.
func (e *Enrolment) Client() *http.Client {
	host := ""
	if u, err := url.Parse(e.URL); err == nil {
		host = u.Hostname()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsutil.Config(host, e.Thumbprint, nil)
	return &http.Client{Transport: tr}
}

// PublicKey is the appliance's upload key.
func (e *Enrolment) PublicKey() ed25519.PublicKey { return e.key.Public().(ed25519.PublicKey) }

// SetNow sets the clock of the signatures (tests).
func (e *Enrolment) SetNow(now func() time.Time) { e.now = now }

func (e *Enrolment) clock() time.Time {
	if e.now != nil {
		return e.now().UTC()
	}
	return time.Now().UTC()
}

// sign sets the timestamp, nonce and signature headers of req over the
// message msg builds from them.
func (e *Enrolment) sign(req *http.Request, msg func(ts, nonce string) []byte) error {
	nonce, err := NewNonce()
	if err != nil {
		return err
	}
	ts := e.clock().Format(time.RFC3339)
	req.Header.Set(HeaderAppliance, e.ApplianceID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(ed25519.Sign(e.key, msg(ts, nonce))))
	return nil
}

// SignUpload signs an upload request of a bundle.
func (e *Enrolment) SignUpload(req *http.Request, month string, version int, sha string) error {
	return e.sign(req, func(ts, nonce string) []byte { return UploadMessage(e.ApplianceID, month, version, sha, ts, nonce) })
}

// SendHeartbeat posts hb to the receiver, signed.
func (e *Enrolment) SendHeartbeat(ctx context.Context, hb Heartbeat) error {
	hb.ApplianceID = e.ApplianceID
	body, err := json.Marshal(hb)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL+PathHeartbeat, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := e.sign(req, func(ts, nonce string) []byte {
		return HeartbeatMessage(e.ApplianceID, hex.EncodeToString(sum[:]), ts, nonce)
	}); err != nil {
		return err
	}
	resp, err := e.Client().Do(req)
	if err != nil {
		return fmt.Errorf("heartbeat to %s: %w", e.URL, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("heartbeat to %s: %s: %s", e.URL, resp.Status, bytes.TrimSpace(rb))
	}
	return nil
}
