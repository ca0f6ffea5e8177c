package report

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
	"github.com/usagemeter/usagemeter/internal/secretfile"
	"github.com/usagemeter/usagemeter/internal/store"
)

// Errors of report generation that are the user's to fix; the messages say how.
var (
	ErrNotRegistered = errors.New("the appliance is not registered: run `usagemeter register --contract ID --program rental|sovereign-cloud` before reports can be generated")
	ErrNoData        = errors.New("no usage was collected in this month: no report is generated or sent")
	ErrMonthNotOver  = errors.New("month is not over yet")
	ErrNoRecipients  = errors.New("report.recipient_keys is empty: reports are only sent encrypted (use --plain to write the unencrypted bundle)")
)

// Default file names under data_dir.
const (
	DefaultSecretFile  = "anonymization.key"
	DefaultSigningKey  = "appliance-signing.asc"
	ReportsDir         = "reports"
	encryptedExtension = ".gpg"
)

// Options build a Generator; see NewFromConfig for the usual wiring.
type Options struct {
	Store      *store.Store
	Location   *time.Location // report time zone; nil = UTC
	Mode       anonymize.Mode
	Secret     []byte             // anonymisation secret (hashed mode)
	Recipients openpgp.EntityList // aggregator keys; none = plain bundles only
	Signer     *openpgp.Entity    // appliance signing key (required with Recipients)
	Dir        string             // where bundles are kept (data_dir/reports)
	Channels   []Channel          // delivery channels, in order
	// FleetKey, when the appliance is enrolled with a receiver, keys the
	// fleet fingerprints of the products' instances in the manifest
	// (Manifest.Fleet), by which the receiver bills a vCenter metered by
	// two appliances once.
	FleetKey []byte
	Now      func() time.Time // nil = time.Now
	Log      *slog.Logger     // nil = discard
}

// Generator builds, stores and delivers monthly reports.
type Generator struct {
	store      *store.Store
	loc        *time.Location
	mode       anonymize.Mode
	secret     []byte
	recipients openpgp.EntityList
	signer     *openpgp.Entity
	dir        string
	channels   []Channel
	fleetKey   []byte
	now        func() time.Time
	log        *slog.Logger

	// crashAfterDeliver, set by tests, is called after a channel delivered
	// and before its status is recorded; an error stops Deliver there, as
	// a crash would.
	crashAfterDeliver func(channel string) error
}

// New returns a Generator.
func New(o Options) (*Generator, error) {
	if o.Store == nil {
		return nil, errors.New("report: no store")
	}
	if o.Dir == "" {
		return nil, errors.New("report: no directory for bundles")
	}
	if o.Mode == "" {
		o.Mode = anonymize.ModeHashed
	}
	if _, err := anonymize.New(o.Mode, o.Secret); err != nil {
		return nil, err
	}
	if len(o.Recipients) > 0 && o.Signer == nil {
		return nil, errors.New("report: recipients given without a signing key")
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Generator{store: o.Store, loc: o.Location, mode: o.Mode, secret: o.Secret, recipients: o.Recipients, signer: o.Signer,
		dir: o.Dir, channels: o.Channels, fleetKey: o.FleetKey, now: o.Now, log: o.Log}, nil
}

// NewFromConfig wires a Generator from the configuration:
//
//   - report.timezone: the month's time zone;
//   - report.anonymization and report.secret_file (default
//     data_dir/anonymization.key, created at first use);
//   - report.recipient_keys: the aggregator's public keys;
//   - report.signing_key_file (default data_dir/appliance-signing.asc,
//     created at first use): the appliance key that signs;
//   - channels: e-mail through the outbox when report.to is set, HTTPS
//     upload when report.upload_url is set (report.upload_token,
//     report.upload_proxy), and the signed upload to the receiver the
//     appliance is enrolled with (`usagemeter enrol`; docs/RECEIVER.md).
//
// Bundles are kept in data_dir/reports; the work directories of builds
// that crashed there are removed (RemoveStaleSpools).
func NewFromConfig(ctx context.Context, cfg *config.Config, st *store.Store, log *slog.Logger) (*Generator, error) {
	r := cfg.Report
	mode, err := anonymize.ParseMode(r.Anonymization)
	if err != nil {
		return nil, fmt.Errorf("report.anonymization: %w", err)
	}
	var secret []byte
	if mode == anonymize.ModeHashed {
		secret, err = anonymize.LoadOrCreateSecret(SecretPath(cfg))
		if err != nil {
			return nil, err
		}
	}
	signer, err := LoadSigningKey(ctx, cfg, st)
	if err != nil {
		return nil, err
	}
	var recipients openpgp.EntityList
	if len(r.RecipientKeys) > 0 {
		if recipients, err = ReadConfiguredRecipients(r.RecipientKeys); err != nil {
			return nil, err
		}
	}
	var channels []Channel
	if len(r.To) > 0 {
		channels = append(channels, &MailChannel{Store: st, To: r.To})
	}
	if r.UploadURL != "" {
		up, err := NewUploadChannel(r.UploadURL, r.UploadToken, r.UploadProxy.Reveal())
		if err != nil {
			return nil, err
		}
		channels = append(channels, up)
	}
	dir := filepath.Join(cfg.DataDir, ReportsDir)
	// What builds that crashed left is removed at start, as before a build.
	for _, d := range RemoveStaleSpools(dir, time.Now()) {
		if log != nil {
			log.Info("removed the work directory of an interrupted report build", "path", d)
		}
	}
	enr, err := protocol.Load(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	var fleetKey []byte
	if enr != nil {
		channels = append(channels, ReceiverChannel(enr))
		fleetKey = enr.FleetKey
	}
	return New(Options{Store: st, Location: cfg.Location(), Mode: mode, Secret: secret, Recipients: recipients, Signer: signer,
		Dir: dir, Channels: channels, FleetKey: fleetKey, Log: log})
}

// SecretPath is the anonymisation secret file of cfg.
func SecretPath(cfg *config.Config) string {
	if cfg.Report.SecretFile != "" {
		return cfg.Report.SecretFile
	}
	return filepath.Join(cfg.DataDir, DefaultSecretFile)
}

// SigningKeyPath is the appliance signing key file of cfg.
func SigningKeyPath(cfg *config.Config) string {
	if cfg.Report.SigningKeyFile != "" {
		return cfg.Report.SigningKeyFile
	}
	return filepath.Join(cfg.DataDir, DefaultSigningKey)
}

// LoadSigningKey loads the appliance signing key, creating it (named after
// the appliance id) at first use.
func LoadSigningKey(ctx context.Context, cfg *config.Config, st *store.Store) (*openpgp.Entity, error) {
	name := "usagemeter appliance"
	if st != nil {
		if a, err := st.ReadAppliance(ctx); err == nil {
			name += " " + a.ID
		}
	}
	return LoadOrCreateKey(SigningKeyPath(cfg), name, "usagemeter@appliance.invalid")
}

// ParseMonth reads YYYY-MM as a month in loc.
func ParseMonth(s string, loc *time.Location) (store.Month, error) {
	t, err := time.ParseInLocation("2006-01", s, loc)
	if err != nil {
		return store.Month{}, fmt.Errorf("month %q: want YYYY-MM", s)
	}
	return store.MonthIn(t, loc), nil
}

// Location is the report time zone.
func (g *Generator) Location() *time.Location { return g.loc }

// Result is a stored report version.
type Result struct {
	Report    store.Report
	PlainPath string // the unencrypted (anonymised) bundle, kept for `anonymize reverse`
	Path      string // the bundle as delivered: encrypted when recipients are set
	Manifest  Manifest
	Unchanged bool // the figures equal the latest stored version, which is returned
}

// Build aggregates month into a Bundle without storing anything. It refuses
// an unregistered appliance, a month that is not over and a month without
// data.
func (g *Generator) Build(ctx context.Context, m store.Month) (*Bundle, store.Appliance, error) {
	app, err := g.store.ReadAppliance(ctx)
	if err != nil {
		return nil, app, err
	}
	if app.ContractID == "" || app.Program == "" {
		return nil, app, ErrNotRegistered
	}
	now := g.now()
	if m.End.After(now) {
		if m.Start.After(now) {
			return nil, app, fmt.Errorf("%s is in the future: %w", m, ErrMonthNotOver)
		}
		return nil, app, fmt.Errorf("%s ends at %s (%s): %w", m, m.End.Format(time.RFC3339), g.loc, ErrMonthNotOver)
	}
	ok, err := g.store.HasUsage(ctx, m)
	if err != nil {
		return nil, app, err
	}
	if !ok {
		return nil, app, fmt.Errorf("%s: %w", m, ErrNoData)
	}
	b, err := g.build(ctx, m, app, now)
	return b, app, err
}

// Generate builds month and stores it as a new version on disk and in the
// reports table, unless the figures equal those of the latest version: then
// that version is returned (Unchanged), so regenerating a month whose data
// did not change gives the same report. Older versions are never removed.
// A version stored plain (no recipient keys then), or encrypted to other
// keys than the configured ones, is not reused: a new version is made for
// the current keys.
//
// Daemons sharing the database generate a month one at a time (a lock in
// the database): the second one finds the first's version and reuses it,
// rather than building the same version beside it.
func (g *Generator) Generate(ctx context.Context, m store.Month) (*Result, error) {
	unlock, err := g.store.LockReportMonth(ctx, m.Start)
	if err != nil {
		return nil, err
	}
	defer unlock()
	b, _, err := g.Build(ctx, m)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	latest, err := g.store.LatestReport(ctx, m.Start)
	switch {
	case err == nil && latest.FiguresSHA256 == b.FiguresSHA256 && g.sameForm(latest.Path):
		// Same figures, stored in the same form (plain, or encrypted to
		// the same keys): reuse.
		return g.existing(ctx, latest, b)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	version := latest.Version + 1 // 1 when none

	if err := os.MkdirAll(g.dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", g.dir, err)
	}
	// The reverse map is stored (by the database) while the bundle is
	// written and encrypted (here), before the report is recorded; the
	// bundle's spool is removed (b.Close) only once it is.
	saved := make(chan error, 1)
	go func() { saved <- g.saveAnonMap(ctx, b) }()
	waitSaved := sync.OnceValue(func() error { return <-saved })
	defer waitSaved()
	base := filepath.Join(g.dir, fmt.Sprintf("usage-%s-v%d.tar.gz", m, version))
	res := &Result{PlainPath: base, Path: base}
	// The bundle is streamed to its file, and encrypted from that file to
	// the next: neither is held in memory.
	delivered, err := g.writeVersion(base, func(w io.Writer) error { return b.WriteTarGz(w, version) })
	if err != nil {
		return nil, err
	}
	if len(g.recipients) > 0 {
		res.Path = base + encryptedExtension
		delivered, err = g.writeVersion(res.Path, func(w io.Writer) error {
			plain, err := os.Open(base)
			if err != nil {
				return err
			}
			defer plain.Close()
			return EncryptAndSign(w, bufio.NewReaderSize(plain, 256<<10), filepath.Base(base), g.recipients, g.signer, false)
		})
		if err != nil {
			return nil, err
		}
	}
	if err := waitSaved(); err != nil {
		return nil, err
	}
	channels := map[string]store.ChannelStatus{}
	for _, c := range g.channels {
		channels[c.Name()] = store.ChannelStatus{State: store.ChannelPending, At: g.now()}
	}
	rep, err := g.store.InsertReport(ctx, store.Report{Month: m.Start, Version: version, CreatedAt: g.now(), RulesVersion: RulesVersion,
		FiguresSHA256: b.FiguresSHA256, BundleSHA256: delivered, Path: res.Path, Channels: channels})
	if err != nil {
		return nil, err
	}
	res.Report = rep
	res.Manifest = b.Manifest
	res.Manifest.Version = version
	g.log.Info("report generated", "month", m.String(), "version", version, "path", res.Path, "figures", b.Figures,
		"excluded", len(b.Manifest.Excluded), "encrypted", len(g.recipients) > 0)
	return res, nil
}

// sameForm reports whether the stored bundle at path is what this generator
// would deliver: plain without recipients, or encrypted to exactly the
// configured recipients' current encryption keys.
func (g *Generator) sameForm(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	if len(g.recipients) == 0 {
		return IsPlainBundle(data)
	}
	if IsPlainBundle(data) {
		return false
	}
	ids, err := EncryptedTo(data)
	return err == nil && slices.Equal(ids, recipientIDs(g.recipients, time.Now())) // keys are valid in real time, as for encryption
}

func (g *Generator) existing(ctx context.Context, rep store.Report, b *Bundle) (*Result, error) {
	if err := g.saveAnonMap(ctx, b); err != nil {
		return nil, err
	}
	res := &Result{Report: rep, Path: rep.Path, PlainPath: strings.TrimSuffix(rep.Path, encryptedExtension), Manifest: b.Manifest, Unchanged: true}
	res.Manifest.Version = rep.Version
	return res, nil
}

func (g *Generator) saveAnonMap(ctx context.Context, b *Bundle) error {
	// Batches keep each statement's arrays small.
	return b.rev.each(20000, func(entries []store.AnonEntry) error {
		_, err := g.store.SaveAnonMap(ctx, entries, g.now())
		return err
	})
}

// Deliver sends rep on every configured channel on which it is not yet
// delivered (queued in the outbox, or accepted by the upload server), and
// records the status of each in the reports table. An e-mail refused for
// good before is queued again (the admin asked, after fixing report.to).
// It returns the failures joined, naming each channel.
func (g *Generator) Deliver(ctx context.Context, rep store.Report) error {
	return g.deliver(ctx, rep, true)
}

func (g *Generator) deliver(ctx context.Context, rep store.Report, retryRefused bool) error {
	if len(g.channels) == 0 {
		return nil
	}
	if !strings.HasSuffix(rep.Path, encryptedExtension) {
		return fmt.Errorf("report %s version %d: %w", rep.Month.Format("2006-01"), rep.Version, ErrNoRecipients)
	}
	rep, err := g.store.FollowOutbox(ctx, rep)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(rep.Path)
	if err != nil {
		return fmt.Errorf("reading report bundle: %w", err)
	}
	if sha(data) != rep.BundleSHA256 {
		return fmt.Errorf("report bundle %s was changed on disk (SHA-256 differs from the reports table): regenerate it", rep.Path)
	}
	app, err := g.store.ReadAppliance(ctx)
	if err != nil {
		return err
	}
	month := rep.Month.Format("2006-01")
	var errs []error
	for _, c := range g.channels {
		st := rep.Channels[c.Name()]
		if st.Done() {
			continue
		}
		if !retryRefused && st.State == store.ChannelFailed && st.OutboxID() != 0 {
			// Refused for good by the mail server: sending it again
			// hourly fails the same way. `report send` asks again.
			errs = append(errs, fmt.Errorf("report %s version %d by %s was refused by the mail server: %s (fix report.to, then run usagemeter report send --month %s)",
				month, rep.Version, c.Name(), st.Error, month))
			continue
		}
		d := Delivery{ReportID: rep.ID, Attempts: st.Attempts, ApplianceID: app.ID, ContractID: app.ContractID, Month: month, Version: rep.Version,
			FileName: filepath.Base(rep.Path), Data: data, SHA256: rep.BundleSHA256}
		detail, attempts, err := c.Deliver(ctx, d)
		if err == nil && g.crashAfterDeliver != nil {
			if err := g.crashAfterDeliver(c.Name()); err != nil {
				return err // the process died here: nothing after is recorded
			}
		}
		st = store.ChannelStatus{State: store.ChannelSent, At: g.now(), Attempts: st.Attempts + attempts, Detail: detail}
		if c.Name() == ChannelEmail {
			st.State = store.ChannelQueued
		}
		if err != nil {
			st.State, st.Error = store.ChannelFailed, err.Error()
			errs = append(errs, fmt.Errorf("delivering report %s version %d by %s: %w", month, rep.Version, c.Name(), err))
			g.log.Error("report delivery failed", "channel", c.Name(), "month", month, "version", rep.Version, "err", err)
		} else {
			g.log.Info("report delivered", "channel", c.Name(), "month", month, "version", rep.Version, "detail", detail)
		}
		if sr, ok := c.(selfRecording); ok && err == nil && sr.recordsItself() {
			continue
		}
		if err := g.store.SetReportChannel(ctx, rep.ID, c.Name(), st); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Send generates month (a new version only if its figures changed) and
// delivers it on every channel not yet done. The report returned follows
// its e-mail into the outbox: queued until the worker (or `report send`)
// delivered it.
func (g *Generator) Send(ctx context.Context, m store.Month) (*Result, error) {
	res, err := g.Generate(ctx, m)
	if err != nil {
		return nil, err
	}
	derr := g.Deliver(ctx, res.Report)
	rep, err := g.store.ReportByID(ctx, res.Report.ID)
	if err == nil {
		rep, err = g.store.FollowOutbox(ctx, rep)
	}
	if err == nil {
		res.Report = rep
	}
	return res, errors.Join(derr, err)
}

// PreviousMonth is the month before the one now falls in, in loc.
func PreviousMonth(now time.Time, loc *time.Location) store.Month {
	cur := store.MonthIn(now, loc)
	return store.MonthIn(cur.Start.Add(-time.Hour), loc)
}

// RunMonthly is the monthly cron job: it generates the previous month (in
// the report time zone) and delivers it on every configured channel. It is
// idempotent: run again (a restart, a retry) it reuses the stored version
// when the data did not change and only retries the channels that failed.
// A month without data returns an error wrapping ErrNoData and sends nothing.
func (g *Generator) RunMonthly(ctx context.Context, now time.Time) error {
	m := PreviousMonth(now, g.loc)
	g.log.Info("monthly report", "month", m.String())
	_, err := g.Send(ctx, m)
	if err != nil {
		return fmt.Errorf("monthly report %s: %w", m, err)
	}
	return nil
}

// writeVersion writes the file of a new version with mode 0600, by write,
// and returns its SHA-256. A version is never overwritten once stored; but
// the version written here is newer than every reports row, so a file
// already at path belongs to no report: it was left by a run that stopped
// between writing it and storing its row (a crash, a full disk). It is
// replaced, through a temporary file renamed over it, so that a crash now
// leaves the old file or the new one whole.
func (g *Generator) writeVersion(path string, write func(io.Writer) error) (string, error) {
	h := sha256.New()
	hashed := func(w io.Writer) error { return write(io.MultiWriter(w, h)) }
	err := secretfile.WriteExclusive(path, hashed)
	if err == nil {
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	g.log.Warn("replacing a report file left by an interrupted run: no report row names it", "path", path)
	tmp := path + ".partial"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("removing %s: %w", tmp, err)
	}
	h.Reset()
	if err := secretfile.WriteExclusive(tmp, hashed); err != nil {
		return "", fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("replacing the leftover %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// SetNow replaces the generator's clock (the CLI passes its own; tests).
func (g *Generator) SetNow(now func() time.Time) {
	g.now = now
	for _, c := range g.channels {
		if m, ok := c.(*MailChannel); ok {
			m.Now = now // the outbox row is due at the same clock
		}
	}
}

// HasRecipients reports whether reports are encrypted (recipient keys set).
func (g *Generator) HasRecipients() bool { return len(g.recipients) > 0 }

// Channels lists the names of the configured delivery channels.
func (g *Generator) Channels() []string {
	var out []string
	for _, c := range g.channels {
		out = append(out, c.Name())
	}
	return out
}

// RetryUndelivered delivers again the latest version of every month whose
// delivery failed on some channel (or was never attempted), e.g. an upload
// refused for longer than its retries lasted. Meant for a periodic job (the
// daemon may run it hourly); it does nothing when every channel is done.
// An e-mail the mail server refused for good (unknown recipient) is not
// queued again, but returned as an error every time, so that the alert
// stays open until an admin fixed report.to and ran `report send`.
func (g *Generator) RetryUndelivered(ctx context.Context) error {
	if len(g.channels) == 0 {
		return nil
	}
	reps, err := g.store.Reports(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var errs []error
	for _, r := range reps { // newest version of each month first
		month := r.Month.Format("2006-01")
		if seen[month] {
			continue
		}
		seen[month] = true
		r, err := g.store.FollowOutbox(ctx, r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pending := false
		for _, c := range g.channels {
			if !r.Channels[c.Name()].Done() {
				pending = true
			}
		}
		if !pending || !strings.HasSuffix(r.Path, encryptedExtension) {
			continue
		}
		if err := g.deliver(ctx, r, false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
