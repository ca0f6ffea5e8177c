package receiver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/receiver"
	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
	"github.com/usagemeter/usagemeter/internal/smtptest"
)

func TestHeartbeatSilentAndMissingAlerts(t *testing.T) {
	ctx := context.Background()
	srv := smtptest.Start(t, smtptest.Options{})
	// March 20, 2026: the appliances enrol; their reports of March are
	// due on April 3.
	clk := newClock(time.Date(2026, 3, 20, 10, 0, 0, 0, time.UTC))
	f := newFleet(t, clk)
	w, err := appliance.OutboxWorker(f.r.Store, config.SMTP{Host: srv.Host(), Port: srv.Port(), TLS: "none", Auth: "none",
		From: "receiver@provider.example", Timeout: config.Duration(5 * time.Second)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Now = clk.Now
	a := newApp(t, f, "a1111111-0000-4000-8000-000000000001", 0x11, "50aaaaaa-0000-4000-8000-00000000000a", 4096, 2048)
	b := newApp(t, f, "b2222222-0000-4000-8000-000000000002", 0x22, "50bbbbbb-0000-4000-8000-00000000000b", 4096, 1024)
	a.enrol(t, f, f.token(t))
	b.enrol(t, f, f.token(t))
	beat := func(x *app) {
		t.Helper()
		hb, err := protocol.HeartbeatOf(ctx, x.st, "1.2.3", clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		// State only: no endpoint, no name, no figure.
		if b, _ := json.Marshal(hb); strings.Contains(string(b), "corp.example") || strings.Contains(string(b), "web-") || len(hb.Products) != 2 {
			t.Fatalf("heartbeat %s", b)
		}
		if err := x.enr.SendHeartbeat(ctx, hb); err != nil {
			t.Fatal(err)
		}
	}
	sent := func() []string {
		t.Helper()
		if _, _, err := w.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		var subjects []string
		for _, m := range srv.Messages() {
			msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
			if err != nil {
				t.Fatal(err)
			}
			s, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
			if err != nil {
				t.Fatal(err)
			}
			subjects = append(subjects, s)
		}
		return subjects
	}
	beat(a)
	beat(b)
	if err := f.r.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if s := sent(); len(s) != 0 {
		t.Fatalf("mails while all is well: %v", s)
	}
	v := f.fleetView(t, a.enr.Client())
	fa := v.Appliances[0]
	if fa.Version != "1.2.3" || fa.LastHeartbeat == nil || len(fa.Products) != 2 || fa.Products[0].LastHour == nil || fa.Silent {
		t.Fatalf("fleet after a heartbeat: %+v", fa)
	}

	// B keeps beating, A goes silent: one mail after 2 hours, not more.
	for range 5 {
		clk.Add(30 * time.Minute)
		beat(b)
		if err := f.r.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	s := sent()
	if len(s) != 1 || !strings.Contains(s[0], "appliance "+a.id+" silent since 2026-03-20 10:00") {
		t.Fatalf("silent mails: %v", s)
	}
	v = f.fleetView(t, a.enr.Client())
	if !v.Appliances[0].Silent || v.Appliances[1].Silent {
		t.Fatalf("fleet silent flags: %v %v", v.Appliances[0].Silent, v.Appliances[1].Silent)
	}
	beat(a)
	if s := sent(); len(s) != 2 || !strings.Contains(s[1], "resolved: appliance "+a.id+" is heard from again") {
		t.Fatalf("resolved mail: %v", s)
	}

	// April 3: March is due. A sent it, B did not: B's is alerted missing.
	clk.set(time.Date(2026, 4, 3, 0, 30, 0, 0, time.UTC))
	beat(a)
	beat(b)
	a.send(t)
	if err := f.r.Check(ctx); err != nil {
		t.Fatal(err)
	}
	s = sent()
	if len(s) != 3 || !strings.Contains(s[2], "report 2026-03 of appliance "+b.id+" missing") {
		t.Fatalf("missing mails: %v", s)
	}
	v = f.fleetView(t, a.enr.Client())
	states := map[string]string{}
	for _, fa := range v.Appliances {
		for _, m := range fa.Months {
			if m.Month == "2026-03" {
				states[fa.ID] = m.State
				if fa.ID == b.id && !m.Missing {
					t.Errorf("B's March not flagged missing: %+v", m)
				}
			}
		}
	}
	if states[a.id] != receiver.MonthMerged || states[b.id] != receiver.MonthExpected {
		t.Fatalf("March states: %v", states)
	}
	// B's report arrives late: the alert resolves, the audit says late.
	b.send(t)
	if s := sent(); len(s) != 4 || !strings.Contains(s[3], "resolved: report 2026-03 of appliance "+b.id+" received") {
		t.Fatalf("after B's report: %v", s)
	}
	if n := f.count(t, `SELECT count(*) FROM receiver_audit WHERE event = 'received' AND appliance = $1 AND detail LIKE '%late (due 2026-04-03)'`, b.id); n != 1 {
		t.Fatalf("late audit rows: %d", n)
	}
}
