package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/localpg"
	"github.com/usagemeter/usagemeter/internal/store"
)

// ErrDatabaseNotRunning is DatabaseSchema's answer when database.url is
// empty and no usagemeter process runs the managed PostgreSQL.
var ErrDatabaseNotRunning = errors.New("the managed PostgreSQL is not running (no usagemeter process runs it; it is not started to answer this)")

// DatabaseSchema reads the schema version of the appliance's database
// without changing anything: it does not migrate, and with a managed
// database (database.url empty) it only uses a server that a usagemeter
// process already runs, else ErrDatabaseNotRunning. It gives up after 10
// seconds.
func DatabaseSchema(ctx context.Context, cfg *config.Config) (int32, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := cfg.Database.URL.Reveal()
	if url == "" {
		c, err := localpg.New(localpg.Options{Dir: filepath.Join(cfg.DataDir, "postgres"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			return 0, fmt.Errorf("database.url is empty, so usagemeter runs its own PostgreSQL: %w", err)
		}
		if !c.Running(ctx) {
			return 0, ErrDatabaseNotRunning
		}
		url = c.URL("usagemeter")
	}
	p, err := store.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer p.Close()
	v, err := store.New(p, nil).SchemaVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the schema version: %w", err)
	}
	return v, nil
}
