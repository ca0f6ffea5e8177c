package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// QueryRow runs a query in the month's transaction (tests look at its
// tables).
func (d *MonthData) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return d.tx.QueryRow(ctx, sql, args...)
}
