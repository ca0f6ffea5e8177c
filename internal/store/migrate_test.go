package store_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/migrations"
)

// TestMailDeliveryMigration: upgrading a database of schema version 1, the
// mails given up for an authentication, TLS or policy refusal are queued
// again (reports whatever their age, alerts of the last week); unknown
// recipients stay failed, as refused.
func TestMailDeliveryMigration(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDatabaseAt(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		`INSERT INTO outbox (id, kind, recipients, subject, body_text, state, last_error, created_at) VALUES
		 (1, 'report', '{a@b}', 'old report', 't', 'failed', 'sending mail via h:587: authentication failed (535 5.7.8 no)', now() - interval '90 days'),
		 (2, 'alert:collection_failed', '{a@b}', 'recent alert', 't', 'failed', 'sending mail via h:587: server does not offer STARTTLS', now() - interval '1 day'),
		 (3, 'alert:collection_failed', '{a@b}', 'old alert', 't', 'failed', 'sending mail via h:587: TLS certificate not trusted', now() - interval '90 days'),
		 (4, 'report', '{x@b}', 'unknown recipient', 't', 'failed', 'sending mail via h:587: recipient refused (550 5.1.1 no such user)', now()),
		 (5, 'alert:x', '{a@b}', 'sent', 't', 'sent', NULL, now())`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := migrations.Apply(ctx, conn); err != nil {
		t.Fatal(err)
	}
	want := map[int]string{1: "queued configuration", 2: "queued configuration", 3: "failed ", 4: "failed refused", 5: "sent "}
	rows, err := conn.Query(ctx, `SELECT id, state || ' ' || coalesce(failure, '') FROM outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]string{}
	for rows.Next() {
		var id int
		var s string
		if err := rows.Scan(&id, &s); err != nil {
			t.Fatal(err)
		}
		got[id] = s
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("mail %d after the upgrade: %q, want %q", id, got[id], w)
		}
	}
}
