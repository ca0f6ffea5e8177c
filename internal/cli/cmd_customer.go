package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/store"
)

func init() {
	register(&command{name: "customer add", summary: "label an object's usage with a customer (--label L --object-type T --object NAME)", run: runCustomerAdd})
	register(&command{name: "customer list", summary: "list customer rules", run: runCustomerList})
	register(&command{name: "customer remove", summary: "remove a customer rule (--id N, or --object-type T --object NAME)", run: runCustomerRemove})
}

const customerTypesHelp = "vcenter, datacenter, cluster, host, resource-pool, folder, vcd or vcd-org"

func runCustomerAdd(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "customer add")
	label := fs.String("label", "", "customer label (hashed in reports)")
	typ := fs.String("object-type", "", "object type: "+customerTypesHelp)
	obj := fs.String("object", "", "object name; for folders and resource pools a path or a segment of it (children inherit); for vcd-org the org's name or id (UUID or urn:vcloud:org:UUID): the rule follows the org through a rename")
	vcenter := fs.Int64("vcenter", 0, "host, cluster or datacenter: bind the rule to the object of this vCenter product (by its instance UUID), not to every object of that name")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *label == "" || *obj == "" {
		return usagef("--label, --object-type and --object are required")
	}
	if !store.ValidCustomerObjectType(*typ) {
		return usagef("--object-type must be one of %s (got %q)", customerTypesHelp, *typ)
	}
	app, err := appliance.Open(ctx, *cfgPath, e.Stderr)
	if err != nil {
		return err
	}
	defer app.Close()
	if *vcenter != 0 {
		if *typ != "host" && *typ != "cluster" && *typ != "datacenter" {
			return usagef("--vcenter goes with --object-type host, cluster or datacenter (got %q)", *typ)
		}
		p, err := app.Store.Product(ctx, *vcenter)
		if err != nil {
			return fmt.Errorf("--vcenter %d: %w", *vcenter, err)
		}
		if p.Kind != "vcenter" || p.InstanceID == "" {
			return fmt.Errorf("--vcenter %d is not a vCenter with a known instance UUID (see usagemeter product list)", *vcenter)
		}
		*obj = store.ScopedObjectName(p.InstanceID, *obj)
	}
	id, err := app.Store.AddCustomerRule(ctx, store.CustomerRule{Label: *label, ObjectType: *typ, ObjectName: *obj})
	if err := audited(ctx, e, app, "customer.add", fmt.Sprintf("%s %q", *typ, *obj), "label "+*label, err); err != nil {
		return err
	}
	r := store.CustomerRule{ObjectType: *typ, ObjectName: *obj}
	if rules, err := app.Store.CustomerRules(ctx); err == nil {
		for _, x := range rules {
			if x.ID == id {
				r = x
			}
		}
	}
	fmt.Fprintf(e.Stdout, "customer rule %d: %s %s -> %s\n", id, r.ObjectType, ruleObject(r, true), *label)
	if r.ObjectType == "vcd-org" && r.ObjectID == "" {
		fmt.Fprintln(e.Stdout, "  no org of that name collected yet: it matches by name until the daemon finds the org's id (daily), then follows the org through a rename")
	}
	return nil
}

func runCustomerList(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "customer list")
	app, err := parseAndOpen(ctx, e, fs, cfgPath, args)
	if err != nil {
		return err
	}
	defer app.Close()
	rules, err := app.Store.CustomerRules(ctx)
	if err != nil {
		return err
	}
	if len(rules) == 0 {
		fmt.Fprintf(e.Stdout, "no customer rules: all usage is reported as %q\n", store.NoCustomer)
		return nil
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLABEL\tOBJECT TYPE\tOBJECT")
	for _, r := range rules {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", r.ID, r.Label, r.ObjectType, ruleObject(r, false))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "\nWhen several rules match, the first type wins in this order: %s;\namong folders (or resource pools) the deepest match wins. The rest is %q.\n",
		strings.Join(store.CustomerObjectTypes, " > "), store.NoCustomer)
	return nil
}

// ruleObject is how a rule's object is shown: its name (quoted), and a
// Cloud Director org's id when known.
func ruleObject(r store.CustomerRule, quoted bool) string {
	name := r.ObjectName
	if quoted {
		name = strconv.Quote(name)
	}
	if r.ObjectID != "" && r.ObjectID != r.ObjectName {
		return name + " (org id " + r.ObjectID + ")"
	}
	return name
}

func runCustomerRemove(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "customer remove")
	id := fs.Int64("id", 0, "rule id (see customer list)")
	typ := fs.String("object-type", "", "object type of the rule")
	obj := fs.String("object", "", "object name of the rule")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*id == 0) == (*typ == "" && *obj == "") {
		return usagef("give either --id or --object-type with --object")
	}
	app, err := appliance.Open(ctx, *cfgPath, e.Stderr)
	if err != nil {
		return err
	}
	defer app.Close()
	if *id != 0 {
		err = app.Store.RemoveCustomerRule(ctx, *id)
	} else {
		err = app.Store.RemoveCustomerRuleFor(ctx, *typ, *obj)
	}
	target := fmt.Sprintf("rule %d", *id)
	if *id == 0 {
		target = fmt.Sprintf("%s %q", *typ, *obj)
	}
	err = audited(ctx, e, app, "customer.remove", target, "", err)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.Stdout, "customer rule removed; reports generated from now on use the remaining rules")
	return nil
}
