package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/report"
)

// Channel is a report's delivery on one channel.
type Channel struct {
	Name   string    `json:"name"`
	State  string    `json:"state"` // pending, queued, sent, failed (with the outbox's view of a queued mail)
	At     time.Time `json:"at"`
	Error  string    `json:"error,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// Report is one stored version of a monthly report.
type Report struct {
	ID            int64     `json:"id"`
	Month         string    `json:"month"` // YYYY-MM
	Version       int       `json:"version"`
	CreatedAt     time.Time `json:"created_at"`
	RulesVersion  string    `json:"rules_version"`
	FiguresSHA256 string    `json:"figures_sha256"`
	BundleSHA256  string    `json:"bundle_sha256"`
	FileName      string    `json:"file_name"`
	Encrypted     bool      `json:"encrypted"`
	Channels      []Channel `json:"channels"`
}

func (s *Service) reportOf(ctx context.Context, r store.Report) Report {
	out := Report{ID: r.ID, Month: r.Month.Format("2006-01"), Version: r.Version, CreatedAt: r.CreatedAt.UTC(), RulesVersion: r.RulesVersion,
		FiguresSHA256: r.FiguresSHA256, BundleSHA256: r.BundleSHA256, FileName: filepath.Base(r.Path), Encrypted: strings.HasSuffix(r.Path, ".gpg"),
		Channels: []Channel{}}
	for n, c := range r.Channels {
		out.Channels = append(out.Channels, Channel{Name: n, State: appliance.OutboxState(ctx, s.app.Store, c), At: c.At, Error: c.Error, Detail: c.Detail})
	}
	sort.Slice(out.Channels, func(i, j int) bool { return out.Channels[i].Name < out.Channels[j].Name })
	return out
}

// Reports lists the stored reports, newest month first.
func (s *Service) Reports(ctx context.Context) ([]Report, error) {
	reps, err := s.app.Store.Reports(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Report, 0, len(reps))
	for _, r := range reps {
		out = append(out, s.reportOf(ctx, r))
	}
	return out, nil
}

// Report returns report id.
func (s *Service) Report(ctx context.Context, id int64) (Report, error) {
	r, err := s.app.Store.ReportByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Report{}, notFound("report", id)
	}
	if err != nil {
		return Report{}, err
	}
	return s.reportOf(ctx, r), nil
}

func (s *Service) generator(ctx context.Context) (*report.Generator, error) {
	g, err := report.NewFromConfig(ctx, s.app.Config, s.app.Store, s.log)
	if err != nil {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Err: err}
	}
	g.SetNow(s.now)
	return g, nil
}

// GenerateReport generates the report of month (YYYY-MM in the report's
// time zone; "" = last month): a new version only if its figures changed.
// It is not delivered (ResendReport delivers).
func (s *Service) GenerateReport(ctx context.Context, a Actor, month string) (rep Report, err error) {
	defer func() {
		s.audit(ctx, a, "report.generate", "month "+rep.Month, fmt.Sprintf("version %d", rep.Version), err)
	}()
	g, err := s.generator(ctx)
	if err != nil {
		return rep, err
	}
	m := report.PreviousMonth(s.now(), g.Location())
	if month != "" {
		if m, err = report.ParseMonth(month, g.Location()); err != nil {
			rep.Month = month
			return rep, Invalid("month: %v", err)
		}
	}
	rep.Month = m.String()
	res, err := g.Generate(ctx, m)
	if err != nil {
		if errors.Is(err, report.ErrNotRegistered) || errors.Is(err, report.ErrMonthNotOver) || errors.Is(err, report.ErrNoData) {
			return rep, &Error{Status: http.StatusUnprocessableEntity, Err: err}
		}
		return rep, err
	}
	return s.reportOf(ctx, res.Report), nil
}

// ResendReport delivers report id again on every channel not yet done (an
// e-mail refused before is queued again).
func (s *Service) ResendReport(ctx context.Context, a Actor, id int64) (rep Report, err error) {
	defer func() { s.audit(ctx, a, "report.resend", "report "+strconv.FormatInt(id, 10), rep.Month, err) }()
	r, err := s.app.Store.ReportByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return rep, notFound("report", id)
	}
	if err != nil {
		return rep, err
	}
	rep = s.reportOf(ctx, r)
	g, err := s.generator(ctx)
	if err != nil {
		return rep, err
	}
	if len(g.Channels()) == 0 {
		return rep, &Error{Status: http.StatusUnprocessableEntity, Msg: "no delivery channel configured: set report.to (e-mail) or report.upload_url"}
	}
	derr := g.Deliver(ctx, r)
	if r, err = s.app.Store.ReportByID(ctx, id); err != nil {
		return rep, err
	}
	if r, err = s.app.Store.FollowOutbox(ctx, r); err != nil {
		return rep, err
	}
	rep = s.reportOf(ctx, r)
	if derr != nil {
		return rep, &Error{Status: http.StatusBadGateway, Err: derr}
	}
	return rep, nil
}

// Verification is what checking a stored report found.
type Verification struct {
	ID int64 `json:"id"`
	OK bool  `json:"ok"`
	// BundleIntact: the delivered file's SHA-256 equals the reports table's.
	BundleIntact bool `json:"bundle_intact"`
	// Files is the number of files the plain bundle's manifest lists,
	// each matching its checksum.
	Files         int    `json:"files"`
	Month         string `json:"month"`
	Version       int    `json:"version"`
	FiguresSHA256 string `json:"figures_sha256"`
	Error         string `json:"error,omitempty"`
}

// VerifyReport checks report id on disk: the delivered file against its
// recorded SHA-256, and the plain bundle kept beside it against its
// manifest (`report verify` of the plain bundle).
func (s *Service) VerifyReport(ctx context.Context, id int64) (Verification, error) {
	v := Verification{ID: id}
	r, err := s.app.Store.ReportByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return v, notFound("report", id)
	}
	if err != nil {
		return v, err
	}
	v.Month, v.Version = r.Month.Format("2006-01"), r.Version
	path, err := s.reportFile(r.Path)
	if err != nil {
		v.Error = err.Error()
		return v, nil
	}
	sum, err := appliance.FileSHA256(path)
	if err != nil {
		v.Error = err.Error()
		return v, nil
	}
	v.BundleIntact = sum == r.BundleSHA256
	if !v.BundleIntact {
		v.Error = "the bundle on disk was changed since it was stored (its SHA-256 differs from the reports table)"
		return v, nil
	}
	plain, err := s.reportFile(strings.TrimSuffix(r.Path, ".gpg"))
	if err != nil {
		v.Error = err.Error()
		return v, nil
	}
	res, err := report.VerifyFile(plain, nil, nil)
	if err != nil {
		v.Error = err.Error()
		return v, nil
	}
	v.Files, v.FiguresSHA256 = len(res.Manifest.Files), res.Manifest.FiguresSHA256
	v.OK = v.FiguresSHA256 == r.FiguresSHA256
	if !v.OK {
		v.Error = "the plain bundle's figures differ from the reports table's"
	}
	return v, nil
}

// reportFile checks that path lies in the appliance's reports directory
// (a path in the reports table that leads elsewhere is refused, not
// served) and is a regular file.
func (s *Service) reportFile(path string) (string, error) {
	dir, err := filepath.Abs(filepath.Join(s.app.Config.DataDir, report.ReportsDir))
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(dir, abs)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") || strings.ContainsRune(rel, filepath.Separator) {
		return "", &Error{Status: http.StatusNotFound, Msg: "the report file is not in the appliance's reports directory"}
	}
	fi, err := os.Lstat(abs)
	if err != nil {
		return "", &Error{Status: http.StatusNotFound, Msg: "the report file " + filepath.Base(abs) + " is missing on disk", Err: err}
	}
	if !fi.Mode().IsRegular() {
		return "", &Error{Status: http.StatusNotFound, Msg: "the report file " + filepath.Base(abs) + " is not a regular file"}
	}
	return abs, nil
}

// Download is a report file opened for download; close File.
type Download struct {
	Name        string
	ContentType string
	ModTime     time.Time
	File        *os.File
}

func (s *Service) openReport(ctx context.Context, a Actor, id int64, plain bool) (d *Download, err error) {
	action := map[bool]string{false: "report.download", true: "report.download_plain"}[plain]
	defer func() { s.audit(ctx, a, action, "report "+strconv.FormatInt(id, 10), "", err) }()
	r, err := s.app.Store.ReportByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("report", id)
	}
	if err != nil {
		return nil, err
	}
	p := r.Path
	if plain {
		p = strings.TrimSuffix(p, ".gpg")
	}
	path, err := s.reportFile(p)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	ct := "application/gzip"
	if strings.HasSuffix(path, ".gpg") {
		ct = "application/pgp-encrypted"
	}
	return &Download{Name: filepath.Base(path), ContentType: ct, ModTime: fi.ModTime(), File: f}, nil
}

// OpenReportBundle opens report id's bundle as delivered (encrypted when
// recipient keys are configured). Downloading it is audited.
func (s *Service) OpenReportBundle(ctx context.Context, a Actor, id int64) (*Download, error) {
	return s.openReport(ctx, a, id, false)
}

// OpenReportPlain opens the plain (anonymised, unencrypted) bundle kept
// beside report id's. Downloading it is audited.
func (s *Service) OpenReportPlain(ctx context.Context, a Actor, id int64) (*Download, error) {
	return s.openReport(ctx, a, id, true)
}
