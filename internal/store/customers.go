package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// NoCustomer is the customer of usage that no customer rule matches.
const NoCustomer = "No Customer Label"

// CustomerObjectTypes are the objects a customer label can be bound to, in
// the order of precedence used when several rules match one span (the first
// wins): the most specific placement first. The dims key each type matches
// is in customerDimKey.
//
//  1. vcd-org        dims "org" (a Cloud Director organisation)
//  2. folder         dims "folder", a path such as "/DC1/vm/Tenants/Acme/web"
//  3. resource-pool  dims "resource_pool"
//  4. host           dims "host"
//  5. cluster        dims "cluster"
//  6. vcd            dims "vcd" (a Cloud Director instance)
//  7. datacenter     dims "datacenter"
//  8. vcenter        dims "vcenter"
//
// Folders and resource pools are matched by path segments, so children
// inherit: a rule on folder "Acme" (or "Tenants/Acme", or the full path
// "/DC1/vm/Tenants/Acme") matches every VM under that folder. When several
// folder (or resource pool) rules match, the deepest match wins. A tie
// between rules of one type goes to the oldest rule.
var CustomerObjectTypes = []string{"vcd-org", "folder", "resource-pool", "host", "cluster", "vcd", "datacenter", "vcenter"}

// customerDimKey is the dims key each object type is matched against.
var customerDimKey = map[string]string{
	"vcd-org": "org", "folder": "folder", "resource-pool": "resource_pool", "host": "host",
	"cluster": "cluster", "vcd": "vcd", "datacenter": "datacenter", "vcenter": "vcenter",
}

// CustomerRule binds a customer label to an object.
type CustomerRule struct {
	ID         int64
	Label      string
	ObjectType string // one of CustomerObjectTypes
	ObjectName string
	CreatedAt  time.Time
}

// ValidCustomerObjectType reports whether t is one of CustomerObjectTypes.
func ValidCustomerObjectType(t string) bool {
	_, ok := customerDimKey[t]
	return ok
}

// AddCustomerRule stores a rule and returns its id. An object can carry one
// label only: a second rule for it is ErrDuplicate.
func (s *Store) AddCustomerRule(ctx context.Context, r CustomerRule) (int64, error) {
	r.Label = strings.TrimSpace(r.Label)
	r.ObjectName = strings.TrimSpace(r.ObjectName)
	switch {
	case r.Label == "":
		return 0, errors.New("customer label is empty")
	case r.Label == NoCustomer:
		return 0, fmt.Errorf("%q is what unlabelled usage is called; choose another label", NoCustomer)
	case !ValidCustomerObjectType(r.ObjectType):
		return 0, fmt.Errorf("object type %q: want one of %s", r.ObjectType, strings.Join(CustomerObjectTypes, ", "))
	case r.ObjectName == "":
		return 0, errors.New("object name is empty")
	}
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO customer_rules (label, object_type, object_name) VALUES ($1, $2, $3) RETURNING id`,
		r.Label, r.ObjectType, r.ObjectName).Scan(&id)
	if isUniqueViolation(err) {
		var label string
		_ = s.pool.QueryRow(ctx, `SELECT label FROM customer_rules WHERE object_type = $1 AND object_name = $2`, r.ObjectType, r.ObjectName).Scan(&label)
		return 0, fmt.Errorf("%s %q is already labelled %q: %w", r.ObjectType, r.ObjectName, label, ErrDuplicate)
	}
	if err != nil {
		return 0, fmt.Errorf("adding customer rule: %w", err)
	}
	return id, nil
}

// CustomerRules lists the rules by label, then object.
func (s *Store) CustomerRules(ctx context.Context) ([]CustomerRule, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, label, object_type, object_name, created_at FROM customer_rules ORDER BY label, object_type, object_name`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (CustomerRule, error) {
		var c CustomerRule
		err := r.Scan(&c.ID, &c.Label, &c.ObjectType, &c.ObjectName, &c.CreatedAt)
		return c, err
	})
}

// RemoveCustomerRule deletes the rule with id.
func (s *Store) RemoveCustomerRule(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM customer_rules WHERE id = $1`, id)
	if err == nil && tag.RowsAffected() == 0 {
		err = fmt.Errorf("customer rule %d: %w", id, ErrNotFound)
	}
	return err
}

// RemoveCustomerRuleFor deletes the rule bound to (objectType, objectName).
func (s *Store) RemoveCustomerRuleFor(ctx context.Context, objectType, objectName string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM customer_rules WHERE object_type = $1 AND object_name = $2`, objectType, objectName)
	if err == nil && tag.RowsAffected() == 0 {
		err = fmt.Errorf("customer rule for %s %q: %w", objectType, objectName, ErrNotFound)
	}
	return err
}

// customerMatchSQL is a LATERAL subquery giving the label of the span "s"
// (columns dims) by the rules above; no row when no rule matches.
//
// Path objects (folder, resource pool) match when the rule's name, without
// leading or trailing slashes, is a run of whole segments of the span's
// path; rank among them is the end position of the match (deeper first).
const customerMatchSQL = `
LEFT JOIN LATERAL (
	SELECT r.label
	  FROM customer_rules r
	 CROSS JOIN LATERAL (SELECT CASE r.object_type
	             WHEN 'vcd-org' THEN 'org' WHEN 'resource-pool' THEN 'resource_pool' ELSE r.object_type END AS key) k
	 CROSS JOIN LATERAL (SELECT coalesce(s.dims ->> k.key, '') AS v,
	                            '/' || trim(both '/' from r.object_name) || '/' AS needle) x
	 CROSS JOIN LATERAL (SELECT CASE WHEN r.object_type IN ('folder', 'resource-pool')
	                                 THEN strpos('/' || trim(both '/' from x.v) || '/', x.needle)
	                                 ELSE 0 END AS pos) p
	 WHERE x.v <> ''
	   AND (CASE WHEN r.object_type IN ('folder', 'resource-pool') THEN p.pos > 0 ELSE x.v = r.object_name END)
	 ORDER BY array_position(ARRAY['vcd-org', 'folder', 'resource-pool', 'host', 'cluster', 'vcd', 'datacenter', 'vcenter'], r.object_type),
	          p.pos + length(x.needle) DESC, r.id
	 LIMIT 1
) c ON true`
