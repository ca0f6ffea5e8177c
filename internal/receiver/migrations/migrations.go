// Package migrations holds the receiver's own schema, applied with
// jackc/tern/v2 after the appliance's (whose outbox and alerts the receiver
// uses), with its own version table.
package migrations

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed *.sql
var files embed.FS

// VersionTable is where tern records the receiver schema's version.
const VersionTable = "receiver_schema_version"

// Apply migrates the receiver schema to the latest version.
func Apply(ctx context.Context, conn *pgx.Conn) error {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return fmt.Errorf("preparing receiver migrations: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return fmt.Errorf("loading receiver migrations: %w", err)
	}
	cur, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return err
	}
	if cur > int32(len(m.Migrations)) {
		return fmt.Errorf("the receiver schema is at version %d but this usagemeter knows only up to %d: run the newer usagemeter", cur, len(m.Migrations))
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrating the receiver schema: %w", err)
	}
	return nil
}
