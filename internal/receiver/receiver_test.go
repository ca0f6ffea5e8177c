package receiver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/receiver"
	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
	"github.com/usagemeter/usagemeter/report"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

var (
	march = store.MonthIn(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.UTC)
	// The vCenter both appliances meter, and each one's own.
	sharedUUID = "5012a1b2-c3d4-e5f6-0718-293a4b5c6d7e"
)

// clock is a settable clock shared by the receiver and the appliances.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock(t time.Time) *clock    { return &clock{t: t} }
func (c *clock) set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }

var _ = (*clock).set

// fleet is a receiver on loopback and its aggregator key.
type fleet struct {
	r     *receiver.Receiver
	url   string
	thumb string
	agg   *openpgp.Entity
	clk   *clock
	log   *bytes.Buffer
}

func newFleet(t *testing.T, clk *clock) *fleet {
	t.Helper()
	ctx := context.Background()
	agg, err := report.GenerateKey("Aggregator", "billing@aggregator.example", clk.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pool := pgtest.NewPool(t)
	var logBuf bytes.Buffer
	r := &receiver.Receiver{Pool: pool, Store: store.New(pool, nil), Keys: openpgp.EntityList{agg}, AdminToken: "admin-secret",
		AlertTo: []string{"fleet@provider.example"}, Now: clk.Now, Log: slog.New(slog.NewTextHandler(&lockedWriter{w: &logBuf}, nil))}
	if err := receiver.Open(ctx, r); err != nil {
		t.Fatal(err)
	}
	url, thumb, stop, err := tlsutil.ServeLoopback(r.Handler())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	r.Thumbprint = thumb
	return &fleet{r: r, url: url, thumb: thumb, agg: agg, clk: clk, log: &logBuf}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (f *fleet) token(t *testing.T) string {
	t.Helper()
	tok, _, err := f.r.CreateToken(context.Background(), "test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// app is an appliance: its own database, products and a month of usage.
type app struct {
	id     string
	st     *store.Store
	dir    string
	signer *openpgp.Entity
	enr    *protocol.Enrolment
	gen    *report.Generator
	secret []byte
}

// newApp makes an appliance metering the shared vCenter and its own one,
// one VM of sharedMB and one of ownMB on each, all of March.
func newApp(t *testing.T, f *fleet, id string, secret byte, ownUUID string, sharedMB, ownMB float64) *app {
	t.Helper()
	ctx := context.Background()
	st := store.New(pgtest.NewPool(t), nil)
	if _, err := st.EnsureAppliance(ctx, false); err != nil {
		t.Fatal(err)
	}
	exec1(t, st, `UPDATE appliance SET id = $1`, id)
	if err := st.Register(ctx, "C-42", "rental", f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	signer, err := report.GenerateKey("usagemeter appliance "+id, "usagemeter@appliance.invalid", f.clk.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	a := &app{id: id, st: st, dir: t.TempDir(), signer: signer, secret: bytes.Repeat([]byte{secret}, 32)}
	from, to := march.Start.AddDate(0, 0, -2), march.End.AddDate(0, 0, 2)
	for _, vc := range []struct {
		host, uuid string
		mb         float64
	}{{"vc-shared.corp.example", sharedUUID, sharedMB}, {"vc-" + id[:4] + ".corp.example", ownUUID, ownMB}} {
		pid, err := st.AddProduct(ctx, store.Product{Kind: "vcenter", Endpoint: "https://" + vc.host + "/sdk", InstanceID: vc.uuid, Options: json.RawMessage(`{"version":"8.0.3"}`)})
		if err != nil {
			t.Fatal(err)
		}
		dims, _ := json.Marshal(map[string]string{"vm": "web-" + vc.host, "host": "esx01", "cluster": "Gold", "datacenter": "DC", "folder": "/DC/vm",
			"resource_pool": "rp", "vcenter": vc.host, "license_key": "AAAAA-RENT", "license_edition": "vsphere-ent"})
		exec1(t, st, `INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims_hash, dims)
			VALUES ($1, $2, $3, $4, $5, $6, 'MB', 'vsphere-ent', '\x00', $7)`, pid, collectors.MetricVMVRAM, vc.uuid+"/vm/1", from, to, vc.mb, string(dims))
		exec1(t, st, `INSERT INTO collection_runs (product_id, hour, state)
			SELECT $1, h, 'done' FROM generate_series($2::timestamptz, $3::timestamptz, interval '1 hour') h`, pid, from, to)
	}
	return a
}

func exec1(t *testing.T, st *store.Store, sql string, args ...any) {
	t.Helper()
	if _, err := st.Pool().Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

// enrol enrols the appliance with the token and wires its generator to
// the receiver.
func (a *app) enrol(t *testing.T, f *fleet, token string) {
	t.Helper()
	pub, err := report.ExportPublic(a.signer)
	if err != nil {
		t.Fatal(err)
	}
	enr, err := protocol.Enrol(context.Background(), protocol.EnrolOptions{DataDir: a.dir, URL: f.url, Token: token, ApplianceID: a.id, Version: "1.0.0-test", ReportKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	enr.SetNow(f.clk.Now)
	a.enr = enr
	a.gen, err = report.New(report.Options{Store: a.st, Mode: anonymize.ModeHashed, Secret: a.secret, Recipients: openpgp.EntityList{f.agg},
		Signer: a.signer, Dir: filepath.Join(a.dir, "reports"), Channels: []report.Channel{report.ReceiverChannel(enr)}, FleetKey: enr.FleetKey, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
}

// send generates March and delivers it to the receiver.
func (a *app) send(t *testing.T) *report.Result {
	t.Helper()
	res, err := a.gen.Send(context.Background(), march)
	if err != nil {
		t.Fatalf("appliance %s: %v", a.id, err)
	}
	st := res.Report.Channels[report.ChannelReceiver]
	if st.State != store.ChannelSent {
		t.Fatalf("appliance %s: receiver channel %+v", a.id, st)
	}
	return res
}

// post sends a signed upload of data as the appliance, with the headers
// changed by edit, and returns the status and body.
func (a *app) post(t *testing.T, f *fleet, month string, version int, data []byte, edit func(h http.Header)) (int, string) {
	t.Helper()
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	req, err := http.NewRequest(http.MethodPost, f.url+protocol.PathUpload, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(protocol.HeaderMonth, month)
	req.Header.Set(protocol.HeaderVersion, fmt.Sprint(version))
	req.Header.Set(protocol.HeaderSHA256, sha)
	if err := a.enr.SignUpload(req, month, version, sha); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(req.Header)
	}
	return do(t, a.enr.Client(), req)
}

func do(t *testing.T, c *http.Client, req *http.Request) (int, string) {
	t.Helper()
	code, body, _ := doHeader(t, c, req)
	return code, body
}

// doHeader is do that returns the response's header too.
func doHeader(t *testing.T, c *http.Client, req *http.Request) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// fleetView reads GET /api/v1/fleet.
func (f *fleet) fleetView(t *testing.T, c *http.Client) receiver.FleetView {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.url+protocol.PathFleet, nil)
	req.Header.Set("Authorization", "Bearer admin-secret")
	code, body := do(t, c, req)
	if code != 200 {
		t.Fatalf("fleet: %d %s", code, body)
	}
	var v receiver.FleetView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func (f *fleet) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := f.r.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEnrolUploadMergeTwoAppliances(t *testing.T) {
	ctx := context.Background()
	clk := newClock(time.Now().UTC())
	f := newFleet(t, clk)
	// Two appliances with their own anonymisation secrets: only the fleet
	// fingerprint tells the receiver that they share a vCenter.
	a := newApp(t, f, "a1111111-0000-4000-8000-000000000001", 0x11, "50aaaaaa-0000-4000-8000-00000000000a", 4096, 2048)
	b := newApp(t, f, "b2222222-0000-4000-8000-000000000002", 0x22, "50bbbbbb-0000-4000-8000-00000000000b", 4096, 1024)

	// A token is one-time, and pins the receiver's certificate.
	tok := f.token(t)
	a.enrol(t, f, tok)
	pub, _ := report.ExportPublic(b.signer)
	if _, err := protocol.Enrol(ctx, protocol.EnrolOptions{DataDir: b.dir, URL: f.url, Token: tok, ApplianceID: b.id, ReportKey: pub}); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("a used token: %v", err)
	}
	other, _, _ := protocol.NewToken(strings.Repeat("AB", 32))
	tokOther := protocol.Token{Secret: strings.Split(f.token(t), ".")[1], Thumbprint: other.Thumbprint}.String()
	if _, err := protocol.Enrol(ctx, protocol.EnrolOptions{DataDir: b.dir, URL: f.url, Token: tokOther, ApplianceID: b.id, ReportKey: pub}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a token for another receiver's certificate: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b.dir, protocol.StateFile)); !os.IsNotExist(err) {
		t.Fatalf("a refused enrolment left its state file: %v", err)
	}
	b.enrol(t, f, f.token(t))
	for _, x := range []*app{a, b} {
		for _, name := range []string{protocol.KeyFile, protocol.StateFile} {
			fi, err := os.Stat(filepath.Join(x.dir, name))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %v %v", name, fi.Mode(), err)
			}
		}
	}

	// Upload, acknowledged with the bundle's checksum.
	resA, resB := a.send(t), b.send(t)
	if got := resA.Report.Channels[report.ChannelReceiver].Detail; got != "HTTP 201" {
		t.Fatalf("first upload: %s", got)
	}
	// Idempotent re-upload: the same bytes again (a fresh nonce) are
	// acknowledged, not stored twice.
	dataA := mustRead(t, resA.Report.Path)
	code, body := a.post(t, f, "2026-03", resA.Report.Version, dataA, nil)
	var ack protocol.Ack
	if code != 200 || json.Unmarshal([]byte(body), &ack) != nil || !ack.Duplicate || ack.SHA256 != resA.Report.BundleSHA256 {
		t.Fatalf("re-upload: %d %s", code, body)
	}
	if n := f.count(t, `SELECT count(*) FROM receiver_bundles`); n != 2 {
		t.Fatalf("%d bundles stored, want 2", n)
	}
	if n := f.count(t, `SELECT count(*) FROM receiver_bundles b JOIN receiver_appliances a ON a.id = b.appliance
		WHERE a.appliance_id = $1 AND b.manifest->>'appliance_id' = $1 AND b.contract = 'C-42' AND b.data = $2 AND b.size = $3 AND b.sha256 = $4
		  AND b.state = 'verified' AND b.month = '2026-03' AND b.version = 1`, a.id, dataA, len(dataA), resA.Report.BundleSHA256); n != 1 {
		t.Fatal("appliance A's bundle not stored as received, with its manifest")
	}

	// The merged month equals the sum of the two decrypted reports (gpg),
	// the shared vCenter once.
	m, err := f.r.Merge(ctx, "2026-03")
	if err != nil {
		t.Fatal(err)
	}
	g := newGPG(t)
	g.importSecret(f.agg)
	for _, x := range []*app{a, b} {
		pub, _ := report.ExportPublic(x.signer)
		g.run(pub, "--import")
	}
	linesA, fleetA := g.monthly(resA.Report.Path)
	linesB, fleetB := g.monthly(resB.Report.Path)
	sharedFP := protocol.Fingerprint(a.enr.FleetKey, sharedUUID)
	sharedHostB := ""
	for _, id := range fleetB {
		if id.Fingerprint == sharedFP {
			sharedHostB = id.Host
		}
	}
	if sharedHostB == "" || len(fleetA) != 2 || len(fleetB) != 2 {
		t.Fatalf("fleet identities: A %v, B %v", fleetA, fleetB)
	}
	want := map[string]*big.Rat{}
	add := func(lines [][]string, skipHost string) {
		for _, l := range lines {
			if l[5] == skipHost {
				continue
			}
			k := strings.Join([]string{l[0], l[1], l[2], l[3], l[7]}, "|")
			if want[k] == nil {
				want[k] = new(big.Rat)
			}
			q, _ := new(big.Rat).SetString(l[4])
			want[k].Add(want[k], q)
		}
	}
	add(linesA, "")
	add(linesB, sharedHostB)
	got := map[string]string{}
	for _, l := range m.Lines {
		if l.Contract != "C-42" {
			t.Errorf("line of contract %q", l.Contract)
		}
		got[strings.Join([]string{l.Product, l.Edition, l.Metric, l.Unit, l.Customer}, "|")] = l.Quantity
	}
	if len(got) != len(want) || len(got) == 0 {
		t.Fatalf("merged %d figures, want %d: %v", len(got), len(want), got)
	}
	for k, w := range want {
		if got[k] != w.FloatString(3) {
			t.Errorf("%s: merged %s, want %s", k, got[k], w.FloatString(3))
		}
	}
	// All the appliances' lines are listed, B's of the shared vCenter not billed.
	parts, unbilled := 0, 0
	for _, l := range m.Lines {
		for _, p := range l.Parts {
			parts++
			if !p.Billed {
				unbilled++
				if p.ApplianceID != b.id || p.ProductHost != sharedHostB || p.BilledBy != a.id {
					t.Errorf("unbilled part %+v", p)
				}
			}
		}
	}
	if parts != len(linesA)+len(linesB) || unbilled == 0 {
		t.Fatalf("%d parts (%d unbilled), want %d", parts, unbilled, len(linesA)+len(linesB))
	}
	if len(m.Shared) != 1 || m.Shared[0].BilledBy != a.id || len(m.Shared[0].Appliances) != 2 {
		t.Fatalf("shared: %+v", m.Shared)
	}
	var tsv bytes.Buffer
	if err := m.WriteTSV(&tsv); err != nil || !strings.Contains(tsv.String(), "no (billed by "+a.id+")") {
		t.Fatalf("provider TSV: %v\n%s", err, tsv.String())
	}
	// Streamed, the same month: the same TSV, the same lines in order.
	var streamed bytes.Buffer
	sm, err := f.r.WriteTSV(ctx, "2026-03", &streamed)
	if err != nil || streamed.String() != tsv.String() || len(sm.Lines) != 0 || len(sm.Shared) != 1 || len(sm.Bundles) != 2 {
		t.Fatalf("streamed TSV (%v), month %+v:\n%s\nwant\n%s", err, sm, streamed.String(), tsv.String())
	}
	i := 0
	if _, err := f.r.MergeEach(ctx, "2026-03", func(l receiver.Line) error {
		if i >= len(m.Lines) || fmt.Sprint(l) != fmt.Sprint(m.Lines[i]) {
			return fmt.Errorf("line %d: %+v", i, l)
		}
		i++
		return nil
	}); err != nil || i != len(m.Lines) {
		t.Fatalf("MergeEach: %v after %d of %d lines", err, i, len(m.Lines))
	}
	stop := errors.New("stop")
	if _, err := f.r.MergeEach(ctx, "2026-03", func(receiver.Line) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("MergeEach's callback error: %v", err)
	}

	// The same month from the API; the API wants the admin token.
	req, _ := http.NewRequest(http.MethodGet, f.url+protocol.PathMonths+"2026-03", nil)
	if code, _ := do(t, a.enr.Client(), req); code != 401 {
		t.Fatalf("months API without the token: %d", code)
	}
	req.Header.Set("Authorization", "Bearer admin-secret")
	code, body = do(t, a.enr.Client(), req)
	var apiMonth receiver.Month
	if code != 200 || json.Unmarshal([]byte(body), &apiMonth) != nil || sumQ(&apiMonth) != sumQ(m) || len(apiMonth.Shared) != 1 {
		t.Fatalf("months API: %d %s", code, body)
	}

	// Every merge above (Merge, WriteTSV, MergeEach, the API) only read:
	// March is verified, not merged, until the minute job marks it.
	for id, ms := range monthStates(f.fleetView(t, a.enr.Client()), "2026-03") {
		if ms.State != receiver.MonthVerified {
			t.Fatalf("%s: March %+v before the minute job", id, ms)
		}
	}
	if err := f.r.Check(ctx); err != nil {
		t.Fatal(err)
	}
	// Fleet: both appliances, March merged.
	v := f.fleetView(t, a.enr.Client())
	if len(v.Appliances) != 2 {
		t.Fatalf("fleet: %+v", v)
	}
	for _, fa := range v.Appliances {
		var march *receiver.MonthState
		for i := range fa.Months {
			if fa.Months[i].Month == "2026-03" {
				march = &fa.Months[i]
			}
		}
		if march == nil || march.State != receiver.MonthMerged || march.Version != 1 {
			t.Fatalf("%s: March %+v", fa.ID, march)
		}
	}

	// A re-versioned report replaces its predecessor, with an audit trail.
	exec1(t, a.st, `INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims_hash, dims)
		SELECT product_id, metric, 'late/vm/2', first_hour, last_hour, 512, unit, edition, dims_hash, dims FROM usage_spans LIMIT 1`)
	res2 := a.send(t)
	if res2.Report.Version != 2 {
		t.Fatalf("version %d", res2.Report.Version)
	}
	if n := f.count(t, `SELECT count(*) FROM receiver_audit WHERE event = 'replaced' AND appliance = $1 AND detail LIKE 'version 1 replaced by version 2%'`, a.id); n != 1 {
		t.Fatalf("%d replacement audit rows", n)
	}
	m2, err := f.r.Merge(ctx, "2026-03")
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.Bundles) != 2 || m2.Bundles[0].Version != 2 || m2.Bundles[1].Version != 1 {
		t.Fatalf("merged bundles after v2: %+v", m2.Bundles)
	}
	if sumQ(m2) == sumQ(m) {
		t.Fatalf("version 2 did not change the merged month")
	}
}

func sumQ(m *receiver.Month) string {
	t := new(big.Rat)
	for _, l := range m.Lines {
		q, _ := new(big.Rat).SetString(l.Quantity)
		t.Add(t, q)
	}
	return t.FloatString(3)
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// gpg is a throw-away GnuPG home.
type gpg struct {
	t    *testing.T
	bin  string
	home string
}

func newGPG(t *testing.T) *gpg {
	t.Helper()
	bin, err := exec.LookPath("gpg")
	if err != nil {
		t.Fatal("gpg not found: install gnupg (the receiver tests decrypt with the real gpg binary)")
	}
	dir, err := os.MkdirTemp("", "umgpg")
	if err != nil {
		t.Fatal(err)
	}
	g := &gpg{t: t, bin: bin, home: filepath.Join(dir, "h")}
	if err := os.Mkdir(g.home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if gc, err := exec.LookPath("gpgconf"); err == nil {
			cmd := exec.Command(gc, "--kill", "all")
			cmd.Env = append(os.Environ(), "GNUPGHOME="+g.home)
			_ = cmd.Run()
		}
		os.RemoveAll(dir)
	})
	return g
}

func (g *gpg) run(stdin []byte, args ...string) []byte {
	g.t.Helper()
	cmd := exec.Command(g.bin, append([]string{"--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "", "--trust-model", "always"}, args...)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+g.home, "LC_ALL=C")
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		g.t.Fatalf("gpg %v: %v\n%s", args, err, errb.String())
	}
	return out.Bytes()
}

func (g *gpg) importSecret(e *openpgp.Entity) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	if err := e.SerializePrivate(w, nil); err != nil {
		g.t.Fatal(err)
	}
	w.Close()
	g.run(buf.Bytes(), "--import")
}

// monthly decrypts a bundle with gpg and returns its Monthly_Usage.tsv rows
// and its manifest's fleet identities.
func (g *gpg) monthly(path string) ([][]string, []report.FleetIdentity) {
	g.t.Helper()
	plain := g.run(nil, "--decrypt", path)
	files, err := report.ReadTarGz(bytes.NewReader(plain))
	if err != nil {
		g.t.Fatal(err)
	}
	var rows [][]string
	var man report.Manifest
	for _, f := range files {
		switch f.Name {
		case report.FileMonthly:
			for i, l := range strings.Split(strings.TrimSpace(string(f.Data)), "\n") {
				if i > 0 {
					rows = append(rows, strings.Split(l, "\t"))
				}
			}
		case report.FileManifest:
			if err := json.Unmarshal(f.Data, &man); err != nil {
				g.t.Fatal(err)
			}
		}
	}
	sort.Slice(rows, func(i, j int) bool { return strings.Join(rows[i], "\t") < strings.Join(rows[j], "\t") })
	return rows, man.Fleet
}
