package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// EditionNames maps the edition keys of the month's spans to the name the
// product gave their licence (dims license_name: the vCenter's
// "vSphere 8 Enterprise Plus" for esx.enterprisePlus.cpuPackageCoreLimited),
// from the latest span that names one.
func (d *MonthData) EditionNames(ctx context.Context) (map[string]string, error) {
	rows, err := d.tx.Query(ctx, `
	SELECT DISTINCT ON (edition) edition, dims ->> 'license_name'
	  FROM usage_spans
	 WHERE first_hour < $2 AND last_hour >= $1 AND edition <> '' AND coalesce(dims ->> 'license_name', '') <> ''
	 ORDER BY edition, last_hour DESC`, d.m.Start, d.m.End)
	if err != nil {
		return nil, fmt.Errorf("edition names of %s: %w", d.m, err)
	}
	out := map[string]string{}
	var key, name string
	_, err = pgx.ForEachRow(rows, []any{&key, &name}, func() error { out[key] = name; return nil })
	return out, err
}
