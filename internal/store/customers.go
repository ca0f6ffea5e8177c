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

// pathLabels is the WITH item "path_labels" (which MonthData keeps as a
// table of the report's transaction): the customer of each folder
// and resource pool path of span_names (the object's own dims, see
// migrations/004_spans_by_object.sql) by the rules above. Path objects
// match when the rule's name, without leading or trailing slashes, is a run
// of whole segments of the path; they are resolved once per distinct path
// (far fewer than spans) by joining every run of segments of the path to the
// rules, the deepest match first (the run that ends at the deepest segment),
// then the oldest rule. The rules on an org, folder or resource pool, which
// come first in CustomerObjectTypes, read span_names (customerOwn); the
// others read span_states (stateLabels, in aggregate.go).
const pathLabels = `
path_runs AS MATERIALIZED (
	SELECT p.key, p.v, j, array_to_string(a.seg[i:j], '/') AS run
	  FROM (SELECT 'folder' AS key, u.dims ->> 'folder' AS v FROM span_names u WHERE u.dims ->> 'folder' <> ''
	        UNION
	        SELECT 'resource-pool', u.dims ->> 'resource_pool' FROM span_names u WHERE u.dims ->> 'resource_pool' <> '') p
	 CROSS JOIN LATERAL (SELECT string_to_array(trim(both '/' from p.v), '/') AS seg) a
	 CROSS JOIN LATERAL generate_series(1, cardinality(a.seg)) AS i
	 CROSS JOIN LATERAL generate_series(i, cardinality(a.seg)) AS j
	 WHERE EXISTS (SELECT 1 FROM customer_rules x WHERE x.object_type IN ('folder', 'resource-pool'))
), path_labels AS (
	SELECT DISTINCT ON (p.key, p.v) p.key, p.v, r.label
	  FROM path_runs p
	  JOIN customer_rules r ON r.object_type = p.key AND trim(both '/' from r.object_name) = p.run
	 ORDER BY p.key, p.v, p.j DESC, r.id
)`

// customerOwnJoins label a span by its names "n" (org, folder, resource
// pool); customerOwn is their label, NULL when none matches.
const customerOwnJoins = `
	  LEFT JOIN customer_rules org ON org.object_type = 'vcd-org' AND org.object_name = n.dims ->> 'org'
	  LEFT JOIN path_labels fo ON fo.key = 'folder' AND fo.v = n.dims ->> 'folder'
	  LEFT JOIN path_labels rp ON rp.key = 'resource-pool' AND rp.v = n.dims ->> 'resource_pool'`

const customerOwn = `coalesce(org.label, fo.label, rp.label)`

// customerStateJoins label a state "st" (host, cluster, Cloud Director,
// datacenter, vCenter); customerState is their label, NULL when none
// matches.
const customerStateJoins = `
	  LEFT JOIN customer_rules ho ON ho.object_type = 'host' AND ho.object_name = st.dims ->> 'host'
	  LEFT JOIN customer_rules cl ON cl.object_type = 'cluster' AND cl.object_name = st.dims ->> 'cluster'
	  LEFT JOIN customer_rules vcd ON vcd.object_type = 'vcd' AND vcd.object_name = st.dims ->> 'vcd'
	  LEFT JOIN customer_rules dc ON dc.object_type = 'datacenter' AND dc.object_name = st.dims ->> 'datacenter'
	  LEFT JOIN customer_rules vc ON vc.object_type = 'vcenter' AND vc.object_name = st.dims ->> 'vcenter'`

const customerState = `coalesce(ho.label, cl.label, vcd.label, dc.label, vc.label)`
