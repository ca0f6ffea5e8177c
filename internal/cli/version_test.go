package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/migrations"
)

type versionJSON struct {
	Version string `json:"version"`
	Schema  struct {
		Binary   int32  `json:"binary"`
		Database *int32 `json:"database"`
		State    string `json:"state"`
		Detail   string `json:"detail"`
	} `json:"schema"`
}

func parseVersion(t *testing.T, out string) versionJSON {
	t.Helper()
	var v versionJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("version --json: %v\n%s", err, out)
	}
	return v
}

// TestVersionSchemas (issue 16): `usagemeter version` shows the binary's
// version and schema and the database's schema, read without migrating it
// (an older database is named as such, with what to do, and stays older)
// and without starting a managed PostgreSQL that does not run.
func TestVersionSchemas(t *testing.T) {
	ctx := context.Background()
	bin := binary(t)
	latest := migrations.Latest()
	url := pgtest.NewDatabaseAt(t, latest-1)
	run := runner(t, bin, writeConfig(t, filepath.Join(t.TempDir(), "data"), "database:\n  url: "+url+"\n"))

	code, out := run("version")
	want := "schema: binary " + strconv.Itoa(int(latest)) + ", database " + strconv.Itoa(int(latest-1)) + ", older"
	if code != 0 || !strings.Contains(out, "usagemeter dev (go") || !strings.Contains(out, want) || !strings.Contains(out, "usagemeter migrate") {
		t.Fatalf("version on an older database (exit %d), want %q:\n%s", code, want, out)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if v, err := migrations.Current(ctx, conn); err != nil || v != latest-1 {
		t.Fatalf("the database's schema after version: %d, %v; want it left at %d", v, err, latest-1)
	}
	if code, out = run("migrate"); code != 0 {
		t.Fatalf("migrate (exit %d):\n%s", code, out)
	}
	code, out = run("version", "--json")
	if v := parseVersion(t, out); code != 0 || v.Version != "dev" || v.Schema.Binary != latest || v.Schema.Database == nil || *v.Schema.Database != latest || v.Schema.State != "current" {
		t.Fatalf("version --json after migrate (exit %d):\n%s", code, out)
	}

	// A managed database that no usagemeter process runs: not started.
	dataDir := filepath.Join(t.TempDir(), "data")
	run = runner(t, bin, writeConfig(t, dataDir, ""))
	code, out = run("version", "--json")
	if v := parseVersion(t, out); code != 0 || v.Schema.Database != nil || v.Schema.State != "unknown" || !strings.Contains(v.Schema.Detail, "not running") {
		t.Fatalf("version --json with the managed database stopped (exit %d):\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "postgres")); !os.IsNotExist(err) {
		t.Fatalf("version touched the managed database's directory: %v", err)
	}
}
