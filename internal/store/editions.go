package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// EditionNames maps the edition keys of the month's spans to the name the
// product gave their licence (dims license_name: the vCenter's
// "vSphere 8 Enterprise Plus" for esx.enterprisePlus.cpuPackageCoreLimited),
// from the latest span that names one. It reads the spans by their state
// (license_name is a dims key of span_states), not the usage_spans view.
func (d *MonthData) EditionNames(ctx context.Context) (map[string]string, error) {
	rows, err := d.tx.Query(ctx, `
	WITH named AS (
		SELECT id, edition, dims ->> 'license_name' AS name FROM span_states
		 WHERE edition <> '' AND coalesce(dims ->> 'license_name', '') <> ''
	)
	SELECT DISTINCT ON (n.edition) n.edition, n.name
	  FROM (SELECT state_id, last_hour FROM spans WHERE first_hour < $2 AND last_hour >= $1 AND state_id IN (SELECT id FROM named)
	        UNION ALL
	        SELECT state_id, last_hour FROM span_objects WHERE first_hour < $2 AND last_hour >= $1 AND state_id IN (SELECT id FROM named)) s
	  JOIN named n ON n.id = s.state_id
	 ORDER BY n.edition, s.last_hour DESC`, d.m.Start, d.m.End)
	if err != nil {
		return nil, fmt.Errorf("edition names of %s: %w", d.m, err)
	}
	out := map[string]string{}
	var key, name string
	_, err = pgx.ForEachRow(rows, []any{&key, &name}, func() error { out[key] = name; return nil })
	return out, err
}
