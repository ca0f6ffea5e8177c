// Package migrations holds the database schema as numbered SQL files,
// embedded in the binary and applied with jackc/tern/v2.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed *.sql
var files embed.FS

// VersionTable is where tern records the applied version.
const VersionTable = "schema_version"

// Latest is the number of migrations this binary knows.
func Latest() int32 {
	names, err := migrate.FindMigrations(files)
	if err != nil {
		panic(err)
	}
	return int32(len(names))
}

// TooNewError says the database was migrated by a newer usagemeter.
type TooNewError struct{ Database, Binary int32 }

func (e *TooNewError) Error() string {
	return fmt.Sprintf("database schema is at version %d but this usagemeter knows only up to %d: it was migrated by a newer usagemeter; run that version (downgrades are not supported)", e.Database, e.Binary)
}

// Current returns the database's schema version (0 when never migrated).
func Current(ctx context.Context, conn *pgx.Conn) (int32, error) {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return 0, err
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", VersionTable).Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	return m.GetCurrentVersion(ctx)
}

// Apply migrates the database to the latest version. It refuses a database
// migrated by a newer binary. It returns the versions before and after.
func Apply(ctx context.Context, conn *pgx.Conn) (from, to int32, err error) {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return 0, 0, fmt.Errorf("preparing migrations: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return 0, 0, fmt.Errorf("loading migrations: %w", err)
	}
	from, err = Current(ctx, conn)
	if err != nil {
		return 0, 0, fmt.Errorf("reading schema version: %w", err)
	}
	latest := int32(len(m.Migrations))
	if from > latest {
		return from, from, &TooNewError{Database: from, Binary: latest}
	}
	if err := m.Migrate(ctx); err != nil {
		return from, from, fmt.Errorf("migrating from version %d: %w", from, err)
	}
	return from, latest, nil
}

// ApplyTo migrates the database to version (an older schema, for tests of
// the migrations that follow it).
func ApplyTo(ctx context.Context, conn *pgx.Conn, version int32) error {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return fmt.Errorf("preparing migrations: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return fmt.Errorf("loading migrations: %w", err)
	}
	return m.MigrateTo(ctx, version)
}

// VersionOf returns the version a migration brings the schema to: its
// sequence number, found by the end of its file name ("spans_by_object"
// for 00N_spans_by_object.sql). Tests of a migration start from the version
// before it, whatever number it was given.
func VersionOf(name string) (int32, error) {
	names, err := migrate.FindMigrations(files)
	if err != nil {
		return 0, err
	}
	for i, n := range names {
		if strings.HasSuffix(n, "_"+name+".sql") {
			return int32(i + 1), nil
		}
	}
	return 0, fmt.Errorf("no migration named %s", name)
}
