package report

// Delivery channels. The report package knows nothing of SMTP: e-mail is a
// row in the outbox (internal/store), sent by the outbox worker with its own
// retries and alerts. The HTTPS upload is done here, with retries.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
	"github.com/usagemeter/usagemeter/internal/store"
)

// Channel names, as keys of reports.channels.
const (
	ChannelEmail  = "email"
	ChannelUpload = "upload"
	// ChannelReceiver is the signed upload to the receiver the appliance
	// is enrolled with.
	ChannelReceiver = "receiver"
)

// Delivery is what a channel delivers: the encrypted bundle and what
// identifies it.
type Delivery struct {
	ReportID    int64 // the reports row; 0 when delivered without one
	Attempts    int   // attempts made on this channel before
	ApplianceID string
	ContractID  string
	Month       string // YYYY-MM
	Version     int
	FileName    string
	Data        []byte
	SHA256      string
}

// Channel delivers a report bundle. Deliver returns a short detail for the
// status ("outbox 12", "HTTP 201") and the attempts it made.
type Channel interface {
	Name() string
	Deliver(ctx context.Context, d Delivery) (detail string, attempts int, err error)
}

// MailChannel queues the report into the outbox, the encrypted bundle
// attached, to the report.to addresses. The mail and the channel's status
// are written in one transaction, keyed by report version and channel: a
// delivery retried after a crash finds the mail queued before. Its text is
// checked word for word with the alert mails, in internal/alert's golden
// files (testdata/report-mail.golden).
type MailChannel struct {
	Store *store.Store
	To    []string
	Now   func() time.Time // nil = time.Now
}

// Name implements Channel.
func (c *MailChannel) Name() string { return ChannelEmail }

// Deliver implements Channel.
func (c *MailChannel) Deliver(ctx context.Context, d Delivery) (string, int, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	text := fmt.Sprintf(`Monthly usage report %s, version %d.

Appliance: %s
Contract:  %s

The attached file %s is the report bundle (.tar.gz), encrypted to the
aggregator's PGP keys and signed by the appliance key. Decrypt it with
  gpg --output usage.tar.gz --decrypt %s
SHA-256 of the attachment: %s
`, d.Month, d.Version, d.ApplianceID, d.ContractID, d.FileName, d.FileName, d.SHA256)
	m := store.Mail{
		Kind:    "report",
		To:      c.To,
		Subject: fmt.Sprintf("Usage report %s (version %d), contract %s", d.Month, d.Version, d.ContractID),
		Text:    text,
		Attachments: []store.Attachment{{
			Name: d.FileName, ContentType: "application/pgp-encrypted", Data: d.Data,
		}},
		CreatedAt: now(),
	}
	var (
		id  int64
		err error
	)
	if d.ReportID == 0 {
		id, err = c.Store.EnqueueMail(ctx, m)
	} else {
		id, err = c.Store.QueueReportMail(ctx, d.ReportID, ChannelEmail, m,
			store.ChannelStatus{State: store.ChannelQueued, At: now(), Attempts: d.Attempts + 1})
	}
	if err != nil {
		return "", 1, fmt.Errorf("queueing the report mail: %w", err)
	}
	return "outbox " + strconv.FormatInt(id, 10), 1, nil
}

// recordsItself implements selfRecording: the status is written with the
// mail.
func (c *MailChannel) recordsItself() bool { return true }

// selfRecording is a Channel that records its status itself, in the same
// transaction as the delivery, when it succeeds.
type selfRecording interface{ recordsItself() bool }

// UploadChannel POSTs the encrypted bundle to an HTTPS endpoint with a
// bearer token, retrying network errors, 408, 429 and 5xx answers with
// backoff. Other 4xx answers are final (a wrong token does not get better).
type UploadChannel struct {
	URL   string
	Token collectors.Secret // sent as a bearer token when set
	// ChannelName is the channel's name in reports.channels; "" = upload.
	ChannelName string
	// Sign, when set, signs each request (the receiver protocol of
	// docs/RECEIVER.md: the enrolled appliance key over the bundle's
	// checksum, appliance, month, version, a timestamp and a nonce).
	Sign     func(*http.Request, Delivery) error
	Client   *http.Client
	Attempts int                             // total attempts; 0 = 5
	Backoff  func(attempt int) time.Duration // nil = 2s, 4s, 8s ... capped at 1m
	Timeout  time.Duration                   // per attempt; 0 = 5m
}

// NewUploadChannel returns an upload channel to url, through proxy when set
// (otherwise the environment's HTTPS_PROXY), verifying TLS with the system
// roots.
func NewUploadChannel(rawURL string, token collectors.Secret, proxy string) (*UploadChannel, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("report.upload_url: must be an https:// URL")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if proxy != "" {
		pu, err := url.Parse(proxy)
		if err != nil || pu.Host == "" {
			return nil, fmt.Errorf("report.upload_proxy: not a URL (http://host:port)")
		}
		tr.Proxy = http.ProxyURL(pu)
	}
	return &UploadChannel{URL: rawURL, Token: token, Client: &http.Client{Transport: tr}}, nil
}

// Name implements Channel.
func (c *UploadChannel) Name() string {
	if c.ChannelName != "" {
		return c.ChannelName
	}
	return ChannelUpload
}

// Deliver implements Channel.
func (c *UploadChannel) Deliver(ctx context.Context, d Delivery) (string, int, error) {
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = 5
	}
	backoff := c.Backoff
	if backoff == nil {
		backoff = func(n int) time.Duration { return min(time.Duration(1<<n)*time.Second, time.Minute) }
	}
	var last error
	for n := 1; n <= attempts; n++ {
		detail, retry, err := c.post(ctx, d)
		if err == nil {
			return detail, n, nil
		}
		last = err
		if !retry || n == attempts {
			return "", n, last
		}
		select {
		case <-ctx.Done():
			return "", n, fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
		case <-time.After(backoff(n)):
		}
	}
	return "", attempts, last
}

func (c *UploadChannel) post(ctx context.Context, d Delivery) (detail string, retry bool, err error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(d.Data))
	if err != nil {
		return "", false, err
	}
	if c.Token.IsSet() {
		req.Header.Set("Authorization", "Bearer "+c.Token.Reveal())
	}
	req.Header.Set("Content-Type", "application/pgp-encrypted")
	req.Header.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", d.FileName))
	req.Header.Set("X-Usagemeter-Appliance", d.ApplianceID)
	req.Header.Set("X-Usagemeter-Month", d.Month)
	req.Header.Set("X-Usagemeter-Version", strconv.Itoa(d.Version))
	req.Header.Set("X-Usagemeter-SHA256", d.SHA256)
	if c.Sign != nil {
		if err := c.Sign(req, d); err != nil {
			return "", false, fmt.Errorf("signing the upload: %w", err)
		}
	}
	client := c.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is named by the caller's context; keep the cause
		}
		return "", true, fmt.Errorf("uploading to %s: %w", redactURL(c.URL), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return "HTTP " + strconv.Itoa(resp.StatusCode), false, nil
	}
	msg := strings.TrimSpace(string(body))
	if msg != "" {
		msg = ": " + msg
	}
	err = fmt.Errorf("upload to %s answered %s%s", redactURL(c.URL), resp.Status, msg)
	switch {
	case (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) && c.Sign != nil:
		return "", false, fmt.Errorf("%w (the receiver does not accept this appliance's enrolment: enrol again with a new token)", err)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return "", false, fmt.Errorf("%w (check report.upload_token)", err)
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return "", true, err
	default:
		return "", false, err
	}
}

// ReceiverChannel is the upload to the receiver of enrolment e: its pinned
// certificate, every request signed by the enrolled key.
func ReceiverChannel(e *protocol.Enrolment) *UploadChannel {
	return &UploadChannel{URL: e.URL + protocol.PathUpload, ChannelName: ChannelReceiver, Client: e.Client(),
		Sign: func(req *http.Request, d Delivery) error { return e.SignUpload(req, d.Month, d.Version, d.SHA256) }}
}

// redactURL drops user info and query (which may carry credentials).
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(upload URL)"
	}
	u.User = nil
	u.RawQuery = ""
	return u.String()
}
