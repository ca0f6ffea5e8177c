package tkgm

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// Labels TKG and the Cluster API set.
const (
	labelManagement   = "cluster-role.tkg.tanzu.vmware.com/management"
	labelClusterName  = "cluster.x-k8s.io/cluster-name"
	labelControlPlane = "cluster.x-k8s.io/control-plane"
)

// cluster is what is kept of a Cluster.
type cluster struct {
	namespace, name, uid string
	management           bool
}

func (c cluster) key() string { return c.namespace + "/" + c.name }

// machine is what is kept of a Machine.
type machine struct {
	namespace, name string
	cluster         string // spec.clusterName (else the cluster-name label)
	providerID      string // spec.providerID, "" until the VM exists
	controlPlane    bool
	phase           string
}

func (m machine) key() string { return m.namespace + "/" + m.name }

// decodeList decodes a list answer as the dynamic client does (the fuzz
// tests call it with the bytes the simulator serves).
func decodeList(b []byte) (*unstructured.UnstructuredList, error) {
	obj, err := runtime.Decode(unstructured.UnstructuredJSONScheme, b)
	if err != nil {
		return nil, err
	}
	l, ok := obj.(*unstructured.UnstructuredList)
	if !ok {
		return nil, fmt.Errorf("a %s, not a list", obj.GetObjectKind().GroupVersionKind().Kind)
	}
	return l, nil
}

// str reads an optional string field; a field of another type is an error
// that names it.
func str(o map[string]any, path ...string) (string, error) {
	v, ok, err := unstructured.NestedFieldNoCopy(o, path...)
	if err != nil {
		return "", fmt.Errorf("field %s: %v", strings.Join(path, "."), err)
	}
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("field %s: expected a string, got %s", strings.Join(path, "."), jsonType(v))
	}
	return s, nil
}

// labels reads metadata.labels.
func labels(o map[string]any) (map[string]any, error) {
	v, ok, err := unstructured.NestedFieldNoCopy(o, "metadata", "labels")
	if err != nil {
		return nil, fmt.Errorf("field metadata.labels: %v", err)
	}
	if !ok || v == nil {
		return nil, nil
	}
	l, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("field metadata.labels: expected an object, got %s", jsonType(v))
	}
	return l, nil
}

func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a bool"
	case int64, float64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// meta reads an item's namespace and name; an item without a name is an
// error.
func meta(u *unstructured.Unstructured) (ns, name string, err error) {
	o := u.Object
	if m, ok := o["metadata"]; ok && m != nil {
		if _, ok := m.(map[string]any); !ok {
			return "", "", fmt.Errorf("field metadata: expected an object, got %s", jsonType(m))
		}
	}
	if ns, err = str(o, "metadata", "namespace"); err != nil {
		return "", "", err
	}
	if name, err = str(o, "metadata", "name"); err != nil {
		return "", "", err
	}
	if name == "" {
		return "", "", fmt.Errorf("field metadata.name: empty")
	}
	return ns, name, nil
}

// parseCluster reads one Cluster item.
func parseCluster(u *unstructured.Unstructured) (cluster, error) {
	ns, name, err := meta(u)
	if err != nil {
		return cluster{}, err
	}
	c := cluster{namespace: ns, name: name}
	fail := func(err error) (cluster, error) { return cluster{}, fmt.Errorf("cluster %s: %w", c.key(), err) }
	if c.uid, err = str(u.Object, "metadata", "uid"); err != nil {
		return fail(err)
	}
	l, err := labels(u.Object)
	if err != nil {
		return fail(err)
	}
	_, c.management = l[labelManagement]
	return c, nil
}

// parseMachine reads one Machine item.
func parseMachine(u *unstructured.Unstructured) (machine, error) {
	ns, name, err := meta(u)
	if err != nil {
		return machine{}, err
	}
	m := machine{namespace: ns, name: name}
	fail := func(err error) (machine, error) { return machine{}, fmt.Errorf("machine %s: %w", m.key(), err) }
	if m.providerID, err = str(u.Object, "spec", "providerID"); err != nil {
		return fail(err)
	}
	if m.cluster, err = str(u.Object, "spec", "clusterName"); err != nil {
		return fail(err)
	}
	if m.phase, err = str(u.Object, "status", "phase"); err != nil {
		return fail(err)
	}
	l, err := labels(u.Object)
	if err != nil {
		return fail(err)
	}
	if m.cluster == "" {
		m.cluster, _ = l[labelClusterName].(string)
	}
	_, m.controlPlane = l[labelControlPlane]
	return m, nil
}
