package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/migrations"
)

// TestMailDeliveryMigration: upgrading a database of the schema before
// 002_mail_delivery, the
// mails given up for an authentication, TLS or policy refusal are queued
// again (reports whatever their age, alerts of the last week); unknown
// recipients stay failed, as refused.
func TestMailDeliveryMigration(t *testing.T) {
	ctx := context.Background()
	conn, v := migrationStep(t, "mail_delivery")
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
	if err := migrations.ApplyTo(ctx, conn, v); err != nil {
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

// migrationStep is a connection to a database of the schema before the
// migration called name, and the version that migration brings it to.
func migrationStep(t *testing.T, name string) (*pgx.Conn, int32) {
	t.Helper()
	ctx := context.Background()
	v, err := migrations.VersionOf(name)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pgtest.NewDatabaseAt(t, v-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, v
}

// TestAdminChangesMigration: upgrading a database of the schema before
// 004_admin_changes, the keys of vSphere's evaluation edition (always
// excluded, whatever their category said) become the evaluation category,
// the others keep theirs; products get an unknown version, hours are not
// backfilled, and no admin change is invented.
func TestAdminChangesMigration(t *testing.T) {
	ctx := context.Background()
	conn, v := migrationStep(t, "admin_changes")
	for _, q := range []string{
		`INSERT INTO licenses (license_key, edition, category) VALUES
		 ('EVAL-1', 'eval', 'rental'), ('EVAL-2', 'eval', 'demo'), ('ENT-1', 'vsphere-ent', 'perpetual'), ('ENT-2', 'vsphere-ent', 'rental')`,
		`INSERT INTO products (id, kind, endpoint, options) VALUES (7, 'vcenter', 'https://vc01.example', '{"version":"8.0.3"}')`,
		`INSERT INTO collection_runs (product_id, hour, state) VALUES (7, '2026-03-01T00:00:00Z', 'done')`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `UPDATE licenses SET category = 'evaluation' WHERE license_key = 'ENT-2'`); err == nil {
		t.Fatal("the schema before the migration accepts the evaluation category: the test does not start from it")
	}
	if err := migrations.ApplyTo(ctx, conn, v); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT license_key || '=' || category FROM licenses ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	cats, err := pgx.CollectRows(rows, pgx.RowTo[string])
	want := []string{"ENT-1=perpetual", "ENT-2=rental", "EVAL-1=evaluation", "EVAL-2=evaluation"}
	if err != nil || strings.Join(cats, " ") != strings.Join(want, " ") {
		t.Errorf("licences after the migration: %v (%v), want %v", cats, err, want)
	}
	var version, opts string
	var backfilled bool
	var changes int
	if err := conn.QueryRow(ctx, `SELECT p.version, p.options::text, r.backfilled, (SELECT count(*) FROM admin_changes)
		FROM products p JOIN collection_runs r ON r.product_id = p.id WHERE p.id = 7`).Scan(&version, &opts, &backfilled, &changes); err != nil {
		t.Fatal(err)
	}
	if version != "" || opts != `{"version": "8.0.3"}` || backfilled || changes != 0 {
		t.Errorf("after the migration: version %q, options %s, backfilled %v, %d admin changes", version, opts, backfilled, changes)
	}
	if _, err := conn.Exec(ctx, `UPDATE licenses SET category = 'evaluation' WHERE license_key = 'ENT-2'`); err != nil {
		t.Errorf("the evaluation category after the migration: %v", err)
	}
}

// TestCustomerRuleOrgIDMigration: upgrading a database of the schema before
// 007_customer_rule_org_id, every customer rule stays as it was, with no
// org id (a vcd-org rule matches by name until its org's id is found).
func TestCustomerRuleOrgIDMigration(t *testing.T) {
	ctx := context.Background()
	conn, v := migrationStep(t, "customer_rule_org_id")
	if _, err := conn.Exec(ctx, `INSERT INTO customer_rules (id, label, object_type, object_name) VALUES (1, 'Acme', 'vcd-org', 'acme'), (2, 'Gold', 'cluster', 'C1')`); err != nil {
		t.Fatal(err)
	}
	if err := migrations.ApplyTo(ctx, conn, v); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT concat_ws('|', id, label, object_type, object_name, object_id) FROM customer_rules ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if want := "1|Acme|vcd-org|acme| 2|Gold|cluster|C1|"; err != nil || strings.Join(got, " ") != want {
		t.Errorf("rules after the migration: %q (%v), want %q", got, err, want)
	}
}
