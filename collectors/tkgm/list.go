package tkgm

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// The Cluster API resources read.
const (
	apiGroup     = "cluster.x-k8s.io"
	apiVersion   = "v1beta1"
	resClusters  = "clusters"
	resMachines  = "machines"
	maxRestarts  = 1 // a list whose continue token expired is started again once
	maxListPages = 1 << 20
)

// listAll lists resource res across all namespaces, paged with limit and
// continue to the end, and parses every item. A continue token that
// expired (410 Gone) starts the list again once, as the API asks.
func listAll[T any](ctx context.Context, c *Collector, res string, parse func(*unstructured.Unstructured) (T, error)) ([]T, error) {
	ri := c.dyn.Resource(schema.GroupVersionResource{Group: apiGroup, Version: apiVersion, Resource: res})
	var out []T
	cont, restarts := "", 0
	for page := 1; page <= maxListPages; page++ {
		var l *unstructured.UnstructuredList
		err := c.call(ctx, func(ctx context.Context) (err error) {
			l, err = ri.List(ctx, metav1.ListOptions{Limit: int64(c.opts.PageSize), Continue: cont})
			return err
		})
		if err != nil && cont != "" && apierrors.IsResourceExpired(err) && restarts < maxRestarts {
			restarts++
			c.log.Info("the list's continue token expired: listing again from the start", "resource", res, "page", page)
			out, cont, page = out[:0], "", 0
			continue
		}
		if err != nil {
			return nil, c.listError(res, page, err)
		}
		for i := range l.Items {
			v, err := parse(&l.Items[i])
			if err != nil {
				return nil, c.pageError(res, page, err)
			}
			out = append(out, v)
		}
		next := l.GetContinue()
		if next == "" {
			return out, nil
		}
		if next == cont {
			return nil, c.pageError(res, page, errors.New("the answer gives back the continue token it was asked with: the list would never end"))
		}
		cont = next
	}
	return nil, c.pageError(res, maxListPages, errors.New("too many pages"))
}

func (c *Collector) pageError(res string, page int, err error) error {
	return &rest.PageError{Kind: Kind, Host: c.host, List: res + "." + apiGroup, Page: page, Err: err}
}

// listError says what a failed list call means for the admin: a refused
// token (ErrToken), a missing RBAC rule, a cluster without the Cluster API.
func (c *Collector) listError(res string, page int, err error) error {
	switch {
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("tkgm %s: listing %s.%s: %w", c.host, res, apiGroup, c.tokenError())
	case apierrors.IsForbidden(err):
		return fmt.Errorf("tkgm %s: listing %s.%s: %w: the service account needs the rule {apiGroups: [%q], resources: [%q], verbs: [\"list\"]} in the ClusterRole bound to it (see the tkgm README)",
			c.host, res, apiGroup, err, apiGroup, res)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("tkgm %s: %s.%s/%s is not served (%w): is the endpoint the TKG management cluster, not a workload cluster?",
			c.host, res, apiGroup, apiVersion, err)
	}
	return c.pageError(res, page, err)
}
