package vrops

import (
	"errors"
	"fmt"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// token is the answer to POST /auth/token/acquire.
type token struct {
	Token    string `json:"token"`
	Validity int64  `json:"validity"` // expiry, epoch milliseconds
}

// parseToken reads the answer to a login.
func parseToken(body []byte) (token, error) {
	var t token
	if err := rest.DecodeJSON(body, &t); err != nil {
		return token{}, err
	}
	if t.Token == "" {
		return token{}, errors.New("field token: empty")
	}
	if t.Validity < 0 {
		return token{}, fmt.Errorf("field validity: negative (%d)", t.Validity)
	}
	return t, nil
}

// resourcePage is one page of GET /resources.
type resourcePage struct {
	PageInfo struct {
		TotalCount int `json:"totalCount"`
		Page       int `json:"page"`
		PageSize   int `json:"pageSize"`
	} `json:"pageInfo"`
	ResourceList []resource `json:"resourceList"`
}

// resource is a resource of the list (the reference's ResourceDto).
type resource struct {
	Identifier  string `json:"identifier"`
	ResourceKey struct {
		Name            string       `json:"name"`
		AdapterKindKey  string       `json:"adapterKindKey"`
		ResourceKindKey string       `json:"resourceKindKey"`
		Identifiers     []identifier `json:"resourceIdentifiers"`
	} `json:"resourceKey"`
	StatusStates []struct {
		ResourceStatus string `json:"resourceStatus"`
		ResourceState  string `json:"resourceState"`
	} `json:"resourceStatusStates"`
}

// identifier is a ResourceIdentifier.
type identifier struct {
	Type struct {
		Name string `json:"name"`
	} `json:"identifierType"`
	Value string `json:"value"`
}

// ident is the value of the identifier called name, "" if none.
func (r *resource) ident(name string) string {
	for _, id := range r.ResourceKey.Identifiers {
		if id.Type.Name == name {
			return id.Value
		}
	}
	return ""
}

// parseResources reads one page of the resource list (as the collector's
// streaming decode does; the fuzz tests call it).
func parseResources(body []byte) (*resourcePage, error) {
	p := new(resourcePage)
	if err := rest.DecodeJSON(body, p); err != nil {
		return nil, err
	}
	return p, p.check()
}

// check refuses a page whose paging fields cannot be.
func (p *resourcePage) check() error {
	if p.PageInfo.TotalCount < 0 {
		return fmt.Errorf("field pageInfo.totalCount: negative (%d)", p.PageInfo.TotalCount)
	}
	if p.PageInfo.Page < 0 {
		return fmt.Errorf("field pageInfo.page: negative (%d)", p.PageInfo.Page)
	}
	return nil
}

// licenses is GET /deployment/licenses.
type licenses struct {
	List []license `json:"solutionLicenses"`
}

// license is a solution licence.
type license struct {
	ID             string `json:"id"`
	Edition        string `json:"edition"`
	ExpirationDate int64  `json:"expirationDate"` // epoch ms, 0 when it never expires
}

// parseLicenses reads GET /deployment/licenses.
func parseLicenses(body []byte) (*licenses, error) {
	l := new(licenses)
	if err := rest.DecodeJSON(body, l); err != nil {
		return nil, err
	}
	return l, nil
}

// version is GET /versions/current.
type version struct {
	ReleaseName string `json:"releaseName"`
	BuildNumber string `json:"buildNumber"`
}

// errorBody is the suite API's error answer.
type errorBody struct {
	Message string `json:"message"`
	Code    int    `json:"apiErrorCode"`
}
