package vrni

import (
	"errors"
	"fmt"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// token is the answer to POST /auth/token.
type token struct {
	Token  string `json:"token"`
	Expiry int64  `json:"expiry"` // epoch milliseconds
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
	if t.Expiry < 0 {
		return token{}, fmt.Errorf("field expiry: negative (%d)", t.Expiry)
	}
	return t, nil
}

// ref is an entity reference.
type ref struct {
	ID   string `json:"entity_id"`
	Type string `json:"entity_type"`
}

// refPage is one page of a list (PagedListResponseWithTime).
type refPage struct {
	Results    []ref  `json:"results"`
	Cursor     string `json:"cursor"`
	TotalCount int    `json:"total_count"`
}

// parseRefs reads one page of a list (as the collector's streaming decode
// does; the fuzz tests call it).
func parseRefs(body []byte) (*refPage, error) {
	p := new(refPage)
	if err := rest.DecodeJSON(body, p); err != nil {
		return nil, err
	}
	return p, p.check()
}

func (p *refPage) check() error {
	if p.TotalCount < 0 {
		return fmt.Errorf("field total_count: negative (%d)", p.TotalCount)
	}
	return nil
}

// vmEntity is a VirtualMachine entity as fetched.
type vmEntity struct {
	ID             string `json:"entity_id"`
	Name           string `json:"name"`
	VendorID       string `json:"vendor_id"` // the vCenter MoRef
	VCenterManager *ref   `json:"vcenter_manager"`
}

// vcEntity is a VCenterManager entity as fetched.
type vcEntity struct {
	ID        string `json:"entity_id"`
	Name      string `json:"name"`
	FQDN      string `json:"fqdn"`
	IPAddress struct {
		IP string `json:"ip_address"`
	} `json:"ip_address"`
}

// fetched is the answer to POST /entities/fetch (BulkFetchResponse) with
// entities E.
type fetched[E any] struct {
	Results []struct {
		ID     string `json:"entity_id"`
		Type   string `json:"entity_type"`
		Entity E      `json:"entity"`
	} `json:"results"`
}

// parseFetched reads a fetch answer.
func parseFetched[E any](body []byte) (*fetched[E], error) {
	f := new(fetched[E])
	if err := rest.DecodeJSON(body, f); err != nil {
		return nil, err
	}
	return f, nil
}

// licensing is GET /settings/licensing.
type licensing struct {
	Result struct {
		Licenses []license `json:"licenses"`
	} `json:"result"`
}

// license is a VRNILicense.
type license struct {
	Edition    string `json:"edition"`
	Evaluation bool   `json:"evaluation"`
	Expired    bool   `json:"expired"`
	Deleted    bool   `json:"deleted"`
	Suspended  bool   `json:"suspended"`
	Invalid    bool   `json:"invalid"`
}

// parseLicensing reads GET /settings/licensing.
func parseLicensing(body []byte) (*licensing, error) {
	l := new(licensing)
	if err := rest.DecodeJSON(body, l); err != nil {
		return nil, err
	}
	return l, nil
}

// errorBody is ApiError.
type errorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}
