package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
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
//  1. vcd-org        dims "org_id" (a Cloud Director organisation, by its id),
//     else "org" (its name: rules whose org id is unknown,
//     and spans collected before the id was)
//  2. folder         dims "folder", a path such as "/DC1/vm/Tenants/Acme/web"
//  3. resource-pool  dims "resource_pool_path" (the pool with its parents), else "resource_pool"
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
	// ObjectID is a Cloud Director org's id (vcd-org rules; "" when not
	// known): the rule follows the org through a rename.
	ObjectID  string
	CreatedAt time.Time
}

// orgIDPattern is a Cloud Director org id: its UUID, alone or in its URN
// (urn:vcloud:org:UUID) or href (.../org/UUID).
var orgIDPattern = regexp.MustCompile(`(?i)(?:^|urn:vcloud:org:|/org/)([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$`)

// OrgID returns the org id (lower-case UUID) that s names, "" when s is not
// an org id (then it is an org's name).
func OrgID(s string) string {
	m := orgIDPattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return ""
	}
	return strings.ToLower(m[1])
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
	if r.ObjectType == "vcd-org" {
		if err := s.identifyOrg(ctx, &r); err != nil {
			return 0, err
		}
	}
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO customer_rules (label, object_type, object_name, object_id) VALUES ($1, $2, $3, $4) RETURNING id`,
		r.Label, r.ObjectType, r.ObjectName, r.ObjectID).Scan(&id)
	if isUniqueViolation(err) {
		var label string
		_ = s.pool.QueryRow(ctx, `SELECT label FROM customer_rules WHERE object_type = $1 AND (object_name = $2 OR (object_id <> '' AND object_id = $3))`, r.ObjectType, r.ObjectName, r.ObjectID).Scan(&label)
		return 0, fmt.Errorf("%s %q is already labelled %q: %w", r.ObjectType, r.ObjectName, label, ErrDuplicate)
	}
	if err != nil {
		return 0, fmt.Errorf("adding customer rule: %w", err)
	}
	return id, nil
}

// identifyOrg completes a vcd-org rule from the collected spans: a rule by
// id is named as the org was last collected (else by its id); a rule by
// name gets the id of the org collected under that name, when one org only
// was (else it matches by name, until ResolveCustomerOrgIDs finds it).
func (s *Store) identifyOrg(ctx context.Context, r *CustomerRule) error {
	if id := OrgID(r.ObjectName); id != "" {
		r.ObjectID, r.ObjectName = id, id
		err := s.pool.QueryRow(ctx, `SELECT dims ->> 'org' FROM span_names
			WHERE dims ->> 'org_id' = $1 AND coalesce(dims ->> 'org', '') <> '' ORDER BY id DESC LIMIT 1`, id).Scan(&r.ObjectName)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("looking up org %s: %w", id, err)
		}
		return nil
	}
	err := s.pool.QueryRow(ctx, `SELECT min(dims ->> 'org_id') FROM span_names
		WHERE dims ->> 'org' = $1 AND coalesce(dims ->> 'org_id', '') <> ''
		HAVING count(DISTINCT dims ->> 'org_id') = 1`, r.ObjectName).Scan(&r.ObjectID)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("looking up org %q: %w", r.ObjectName, err)
	}
	return nil
}

// CustomerRules lists the rules by label, then object.
func (s *Store) CustomerRules(ctx context.Context) ([]CustomerRule, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, label, object_type, object_name, object_id, created_at FROM customer_rules ORDER BY label, object_type, object_name`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (CustomerRule, error) {
		var c CustomerRule
		err := r.Scan(&c.ID, &c.Label, &c.ObjectType, &c.ObjectName, &c.ObjectID, &c.CreatedAt)
		return c, err
	})
}

// ResolveCustomerOrgIDs gives the vcd-org rules made by name whose org id
// is not known yet (added before their org was collected) the id of the org
// collected under that name, when one org only was, so that they follow it
// through a rename from then on. It returns how many rules it resolved. The
// daemon calls it daily and before the monthly report.
func (s *Store) ResolveCustomerOrgIDs(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE customer_rules r SET object_id = o.org_id
		  FROM (SELECT dims ->> 'org' AS org, min(dims ->> 'org_id') AS org_id
		          FROM span_names
		         WHERE coalesce(dims ->> 'org_id', '') <> '' AND coalesce(dims ->> 'org', '') <> ''
		           AND dims ->> 'org' IN (SELECT object_name FROM customer_rules WHERE object_type = 'vcd-org' AND object_id = '')
		         GROUP BY dims ->> 'org'
		        HAVING count(DISTINCT dims ->> 'org_id') = 1) o
		 WHERE r.object_type = 'vcd-org' AND r.object_id = '' AND r.object_name = o.org
		   AND NOT EXISTS (SELECT 1 FROM customer_rules x WHERE x.object_type = 'vcd-org' AND x.object_id = o.org_id)`)
	if err != nil {
		return 0, fmt.Errorf("resolving the org ids of customer rules: %w", err)
	}
	return tag.RowsAffected(), nil
}

// RemoveCustomerRule deletes the rule with id.
func (s *Store) RemoveCustomerRule(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM customer_rules WHERE id = $1`, id)
	if err == nil && tag.RowsAffected() == 0 {
		err = fmt.Errorf("customer rule %d: %w", id, ErrNotFound)
	}
	return err
}

// RemoveCustomerRuleFor deletes the rule bound to (objectType, objectName)
// (a vcd-org rule also by its org's id).
func (s *Store) RemoveCustomerRuleFor(ctx context.Context, objectType, objectName string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM customer_rules WHERE object_type = $1 AND (object_name = $2 OR (object_type = 'vcd-org' AND object_id <> '' AND object_id = $3))`,
		objectType, objectName, OrgID(objectName))
	if err == nil && tag.RowsAffected() == 0 {
		err = fmt.Errorf("customer rule for %s %q: %w", objectType, objectName, ErrNotFound)
	}
	return err
}

// The customer of a span by the rules above ("" when no rule matches) is
// computed by monthSQL in three parts, each where its dims are read
// once:
//
//   - names (span_names: a span's own dims): namesLabel, the label of its
//     org, folder or resource pool, with the joins namesLabelJoins to the
//     table month_paths (customerLabels);
//   - states (span_states: the dims of its host and product): stateLabels,
//     the labels of its host, cluster, Cloud Director, datacenter and
//     vCenter by name, with stateLabelJoins;
//   - per span: the rules scoped to its vCenter (scopedLabelJoins), which
//     need its object key;
//
// and customerExpr takes the first in the order of CustomerObjectTypes.
// Exact objects are hash joins on the unique (object_type, object_name).
// Path objects (folder, resource pool) match when the rule's name, without
// leading or trailing slashes, is a run of whole segments of the span's
// path; they are resolved once per distinct path of the month (far fewer
// than spans) by joining every run of segments of the path to the rules,
// the deepest match first (the run that ends at the deepest segment), then
// the oldest rule. month_paths reads the dims of span_names (folder,
// pool_path: resource_pool_path, else resource_pool).
const customerLabels = `
SELECT DISTINCT ON (p.key, p.v) p.key, p.v, r.label
  FROM (SELECT DISTINCT k.key, k.v
          FROM (` + namesColumns + `) u
         CROSS JOIN LATERAL (VALUES ('folder', u.folder), ('resource-pool', u.pool_path)) AS k(key, v)
         WHERE k.v <> ''
           AND EXISTS (SELECT 1 FROM customer_rules x WHERE x.object_type IN ('folder', 'resource-pool'))) p
 CROSS JOIN LATERAL (SELECT string_to_array(trim(both '/' from p.v), '/') AS seg) a
 CROSS JOIN LATERAL generate_series(1, cardinality(a.seg)) AS i
 CROSS JOIN LATERAL generate_series(i, cardinality(a.seg)) AS j
  JOIN customer_rules r ON r.object_type = p.key AND trim(both '/' from r.object_name) = array_to_string(a.seg[i:j], '/')
 ORDER BY p.key, p.v, j DESC, r.id`

// namesColumns are the dims of span_names as columns, for "names" below.
const namesColumns = `
	SELECT id, dims ->> 'vm' AS vm, dims ->> 'folder' AS folder, dims ->> 'resource_pool' AS resource_pool, dims ->> 'org' AS org, dims ->> 'org_id' AS org_id,
	       coalesce(dims ->> 'resource_pool_path', dims ->> 'resource_pool') AS pool_path,
	       dims ? 'vm_moref' AS has_moref, dims ->> 'vm_moref' AS vm_moref, dims ->> 'vram_mb' AS vram_mb
	  FROM span_names`

// namesLabel is the label of names "n" (org, folder, pool_path) by their
// org, folder or resource pool.
//
// A vcd-org rule that knows its org's id (CustomerRule.ObjectID) matches
// the names of that org by id (dims "org_id"), whatever the org is called
// now, and by name only the names collected without an id (before the
// collector recorded it); a rule without an id matches by name.
const namesLabel = `coalesce(orgi.label, org.label, fo.label, rp.label)`

const namesLabelJoins = `
	  LEFT JOIN customer_rules orgi ON orgi.object_type = 'vcd-org' AND orgi.object_id <> '' AND orgi.object_id = n.org_id
	  LEFT JOIN customer_rules org ON org.object_type = 'vcd-org' AND org.object_name = n.org
	        AND (org.object_id = '' OR coalesce(n.org_id, '') = '')
	  LEFT JOIN month_paths fo ON fo.key = 'folder' AND fo.v = n.folder
	  LEFT JOIN month_paths rp ON rp.key = 'resource-pool' AND rp.v = n.pool_path`

// stateLabels are the labels of state "st" by name: host_label,
// cluster_label, vcd_label, datacenter_label, vcenter_label.
const stateLabels = `ho.label AS host_label, cl.label AS cluster_label, vcd.label AS vcd_label, dc.label AS datacenter_label, vc.label AS vcenter_label`

const stateLabelJoins = `
	  LEFT JOIN customer_rules ho ON ho.object_type = 'host' AND ho.object_name = st.dims ->> 'host'
	  LEFT JOIN customer_rules cl ON cl.object_type = 'cluster' AND cl.object_name = st.dims ->> 'cluster'
	  LEFT JOIN customer_rules vcd ON vcd.object_type = 'vcd' AND vcd.object_name = st.dims ->> 'vcd'
	  LEFT JOIN customer_rules dc ON dc.object_type = 'datacenter' AND dc.object_name = st.dims ->> 'datacenter'
	  LEFT JOIN customer_rules vc ON vc.object_type = 'vcenter' AND vc.object_name = st.dims ->> 'vcenter'`

// A host, cluster or datacenter rule may name its object by identity,
// "<vCenter instance UUID>/<name>" (customer add --vcenter ID), matching
// only that vCenter's object (the span's object key begins with the
// vCenter's instance UUID): same-named clusters of two vCenters do not
// collide. Such a rule wins over a rule by name alone.
const customerExpr = `coalesce(nm.label, hos.label, st.host_label, cls.label, st.cluster_label, st.vcd_label, dcs.label, st.datacenter_label, st.vcenter_label, '')`

// ScopedObjectName is the object name of a rule bound to the object called
// name in the vCenter with instance UUID vcUUID.
func ScopedObjectName(vcUUID, name string) string { return vcUUID + "/" + name }

// scopedLabelJoins: the rules scoped to the vCenter of the span of object
// "o" (its object key), on the names of its state "st". Such a rule's name
// holds a "/": without any (most appliances), unscopedLabels stands in for
// them, and spans are not probed three times for nothing.
const unscopedLabels = `
	  CROSS JOIN (SELECT NULL::text AS label) hos CROSS JOIN (SELECT NULL::text AS label) cls CROSS JOIN (SELECT NULL::text AS label) dcs`

const anyScopedRuleSQL = `SELECT EXISTS (SELECT 1 FROM customer_rules WHERE object_type IN ('host', 'cluster', 'datacenter') AND strpos(object_name, '/') > 0)`

const scopedLabelJoins = `
	  LEFT JOIN customer_rules hos ON hos.object_type = 'host' AND hos.object_name = split_part(o.object_key, '/', 1) || '/' || st.host
	  LEFT JOIN customer_rules cls ON cls.object_type = 'cluster' AND cls.object_name = split_part(o.object_key, '/', 1) || '/' || st.cluster
	  LEFT JOIN customer_rules dcs ON dcs.object_type = 'datacenter' AND dcs.object_name = split_part(o.object_key, '/', 1) || '/' || st.datacenter`
