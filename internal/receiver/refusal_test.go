package receiver_test

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/report"
)

func TestRefusedUploads(t *testing.T) {
	ctx := context.Background()
	clk := newClock(time.Now().UTC())
	f := newFleet(t, clk)
	a := newApp(t, f, "a1111111-0000-4000-8000-000000000001", 0x11, "50aaaaaa-0000-4000-8000-00000000000a", 4096, 2048)
	a.enrol(t, f, f.token(t))
	res, err := a.gen.Generate(ctx, march)
	if err != nil {
		t.Fatal(err)
	}
	data := mustRead(t, res.Report.Path)
	bundles := func() int { return f.count(t, `SELECT count(*) FROM receiver_bundles`) }

	// The same upload twice at once (a retry racing its original): stored
	// once, both acknowledged.
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = a.post(t, f, "2026-03", 1, data, nil)
		}()
	}
	wg.Wait()
	sort.Ints(codes)
	if codes[0] != 200 || codes[1] != 201 || bundles() != 1 {
		t.Fatalf("concurrent uploads: %v, %d bundles", codes, bundles())
	}

	// Damaged in transit: the body is not what was signed. Nothing stored.
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 0xff
	// A genuine bundle under another version than its manifest's.
	code, body := a.post(t, f, "2026-03", 5, data, nil)
	if code != 422 || !strings.Contains(body, "the manifest is version 1, the upload says 5") {
		t.Fatalf("version 5 upload: %d %s", code, body)
	}
	before := bundles()
	req, _ := http.NewRequest(http.MethodPost, f.url+protocol.PathUpload, strings.NewReader(string(bad)))
	req.Header.Set(protocol.HeaderMonth, "2026-03")
	req.Header.Set(protocol.HeaderVersion, "6")
	req.Header.Set(protocol.HeaderSHA256, res.Report.BundleSHA256)
	if err := a.enr.SignUpload(req, "2026-03", 6, res.Report.BundleSHA256); err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, a.enr.Client(), req); code != 400 || !strings.Contains(body, "not the one signed") || bundles() != before {
		t.Fatalf("damaged body: %d %s", code, body)
	}

	// Tampered before signing (or encrypted to another key): signed, but
	// it does not decrypt and verify. Refused, alerted, never merged.
	code, body = a.post(t, f, "2026-03", 7, bad, nil)
	if code != 422 || !strings.Contains(body, "failed verification") {
		t.Fatalf("tampered bundle: %d %s", code, body)
	}
	if n := f.count(t, `SELECT count(*) FROM receiver_bundles WHERE version = 7 AND state = 'failed'`); n != 1 {
		t.Fatalf("tampered bundle rows: %d", n)
	}
	if n := f.count(t, `SELECT count(*) FROM alerts WHERE key = $1 AND resolved_at IS NULL`, "bundle_failed:"+a.id+":2026-03:v7"); n != 1 {
		t.Fatalf("verification alert: %d", n)
	}
	if n := f.count(t, `SELECT count(*) FROM outbox WHERE subject LIKE '%version 7 of appliance%failed verification'`); n != 1 {
		t.Fatalf("verification mail: %d", n)
	}
	// The same bad bytes again stay refused; other bytes for version 1 conflict.
	if code, _ := a.post(t, f, "2026-03", 7, bad, nil); code != 422 {
		t.Fatalf("tampered again: %d", code)
	}
	if code, body := a.post(t, f, "2026-03", 1, bad, nil); code != 409 || !strings.Contains(body, "new version") {
		t.Fatalf("other bytes as version 1: %d %s", code, body)
	}

	// Signature over other fields than sent: refused before storing.
	before = bundles()
	code, body = a.post(t, f, "2026-03", 1, data, func(h http.Header) { h.Set(protocol.HeaderVersion, "8") })
	if code != 401 || !strings.Contains(body, "signature") || bundles() != before {
		t.Fatalf("forged version: %d %s", code, body)
	}
	// A replayed request: the same signed request twice.
	var first http.Header
	code, _ = a.post(t, f, "2026-03", 1, data, func(h http.Header) { first = h.Clone() })
	if code != 200 {
		t.Fatalf("duplicate upload: %d", code)
	}
	req, _ = http.NewRequest(http.MethodPost, f.url+protocol.PathUpload, strings.NewReader(string(data)))
	req.Header = first
	if code, body := do(t, a.enr.Client(), req); code != 409 || !strings.Contains(body, "replayed") {
		t.Fatalf("replay: %d %s", code, body)
	}
	// An old signed request (past the window) is refused by its age.
	a.enr.SetNow(func() time.Time { return clk.Now().Add(-protocol.MaxSkew - time.Minute) })
	if code, body := a.post(t, f, "2026-03", 1, data, nil); code != 401 || !strings.Contains(body, "timestamp") {
		t.Fatalf("stale: %d %s", code, body)
	}
	a.enr.SetNow(clk.Now)
	// An unknown appliance.
	if code, body := a.post(t, f, "2026-03", 1, data, func(h http.Header) { h.Set(protocol.HeaderAppliance, "c3333333-not-enrolled") }); code != 401 || !strings.Contains(body, "unknown appliance") {
		t.Fatalf("unknown: %d %s", code, body)
	}

	// Revoked: uploads and heartbeats refused; the report channel says why.
	if err := f.r.Revoke(ctx, a.id); err != nil {
		t.Fatal(err)
	}
	if err := f.r.Revoke(ctx, a.id); err == nil {
		t.Fatal("revoked twice")
	}
	if code, body := a.post(t, f, "2026-03", 1, data, nil); code != 403 || !strings.Contains(body, "revoked") {
		t.Fatalf("revoked: %d %s", code, body)
	}
	hb, err := protocol.HeartbeatOf(ctx, a.st, "1.0.0-test", clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.enr.SendHeartbeat(ctx, hb); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("revoked heartbeat: %v", err)
	}
	exec1(t, a.st, `INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims_hash, dims)
		SELECT product_id, metric, 'new/vm/3', first_hour, last_hour, 256, unit, edition, dims_hash, dims FROM usage_spans LIMIT 1`)
	r2, err := a.gen.Send(ctx, march)
	if err == nil || !strings.Contains(err.Error(), "enrol again") {
		t.Fatalf("send when revoked: %v", err)
	}
	if r2 != nil && r2.Report.Channels[report.ChannelReceiver].State == store.ChannelSent {
		t.Fatal("marked sent")
	}

	// Every refusal is logged and audited.
	for _, ev := range []string{"refused_checksum", "verification_failed", "refused_signature", "refused_replay", "refused_unknown", "refused_revoked", "revoked"} {
		if f.count(t, `SELECT count(*) FROM receiver_audit WHERE event = $1`, ev) == 0 {
			t.Errorf("no %s in the audit", ev)
		}
	}
	if n := strings.Count(f.log.String(), "receiver refused a request"); n < 8 {
		t.Errorf("%d refusals logged:\n%s", n, f.log.String())
	}
	if strings.Contains(f.log.String(), "admin-secret") {
		t.Error("the admin token leaked into the log")
	}
}
