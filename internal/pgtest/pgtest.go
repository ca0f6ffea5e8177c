// Package pgtest gives tests a real PostgreSQL: one throw-away server per test
// binary, started from the system binaries (as the postgres OS user when the
// tests run as root, in a temp dir, on a unix socket, fsync off), a template
// database migrated once, and a fresh database per test made with
// CREATE DATABASE ... TEMPLATE in milliseconds.
//
// A package using it runs its tests through Run:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
//
// When PostgreSQL cannot be started the tests fail loudly; they never skip.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usagemeter/usagemeter/internal/localpg"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/migrations"
)

const templateDB = "usagemeter_template"

var (
	once     sync.Once
	cluster  *localpg.Cluster
	startErr error
	tmpRoot  string
	seq      atomic.Int64
)

// Run runs the tests of a package and stops the server afterwards.
func Run(m *testing.M) int {
	code := m.Run()
	if cluster != nil {
		_ = cluster.Stop()
	}
	if tmpRoot != "" {
		_ = os.RemoveAll(tmpRoot)
	}
	return code
}

func start() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	tmpRoot, err = os.MkdirTemp("", "usagemeter-pgtest-")
	if err != nil {
		startErr = err
		return
	}
	cluster, err = localpg.New(localpg.Options{Dir: filepath.Join(tmpRoot, "pg"), Fast: true,
		Settings: []string{"shared_buffers=256MB", "work_mem=64MB", "max_wal_size=2GB", "log_min_messages=warning"}})
	if err != nil {
		startErr = err
		return
	}
	if err = cluster.Start(ctx); err != nil {
		startErr = err
		return
	}
	conn, err := pgx.Connect(ctx, cluster.ConnString("postgres"))
	if err != nil {
		startErr = err
		return
	}
	defer conn.Close(ctx)
	if _, err = conn.Exec(ctx, "CREATE DATABASE "+templateDB); err != nil {
		startErr = err
		return
	}
	tconn, err := pgx.Connect(ctx, cluster.ConnString(templateDB))
	if err != nil {
		startErr = err
		return
	}
	_, _, err = migrations.Apply(ctx, tconn)
	tconn.Close(ctx)
	startErr = err
}

// Cluster returns the shared server, starting it on first use.
func Cluster(t testing.TB) *localpg.Cluster {
	t.Helper()
	once.Do(start)
	if startErr != nil {
		t.Fatalf("pgtest: cannot start PostgreSQL (tests need the postgresql server package; .ci/run installs it): %v", startErr)
	}
	return cluster
}

// NewDatabase creates a fresh, migrated database and returns its connection
// string. It is dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	c := Cluster(t)
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), seq.Add(1))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+templateDB); err != nil {
		t.Fatalf("pgtest: creating database: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return c.ConnString(name)
}

// NewEmptyDatabase creates a database with no schema (for migration tests).
func NewEmptyDatabase(t testing.TB) string {
	t.Helper()
	c := Cluster(t)
	name := fmt.Sprintf("e_%d_%d", os.Getpid(), seq.Add(1))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: creating database: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
		if err == nil {
			defer conn.Close(ctx)
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		}
	})
	return c.ConnString(name)
}

// NewPool returns a pool on a fresh migrated database.
// NewDatabaseAt creates a database migrated to schema version (an older
// one, for tests of the migrations after it) and returns its URL.
func NewDatabaseAt(t testing.TB, version int32) string {
	t.Helper()
	url := NewEmptyDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if err := migrations.ApplyTo(ctx, conn, version); err != nil {
		t.Fatalf("pgtest: migrating to version %d: %v", version, err)
	}
	return url
}

func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := store.Connect(context.Background(), NewDatabase(t)) // as the appliance connects
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewServer starts a PostgreSQL server of the test's own, which the test may
// stop and start again (a database outage across minute M, a reboot into a
// broken database) without disturbing the shared one. Its databases are not
// migrated: connect to URL("postgres") and migrate as the daemon does. It is
// stopped when the test ends.
func NewServer(t testing.TB) *localpg.Cluster {
	t.Helper()
	c, err := localpg.New(localpg.Options{Dir: filepath.Join(t.TempDir(), "pg"), Fast: true, Settings: []string{"log_min_messages=warning"}})
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("pgtest: starting a server of the test's own: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	return c
}
