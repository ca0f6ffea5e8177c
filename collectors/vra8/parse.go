package vra8

import (
	"errors"
	"fmt"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// page is one page of an IaaS list (MachineResult, CloudAccountResult).
type page[T any] struct {
	Content          []T  `json:"content"`
	NumberOfElements int  `json:"numberOfElements"`
	TotalElements    *int `json:"totalElements"` // "in some cases may not be populated"
}

// parsePage reads one page of a list (as the collector's streaming decode
// does; the fuzz tests call it).
func parsePage[T any](body []byte) (*page[T], error) {
	p := new(page[T])
	if err := rest.DecodeJSON(body, p); err != nil {
		return nil, err
	}
	return p, p.check()
}

// check refuses a page whose paging fields cannot be.
func (p *page[T]) check() error {
	if p.NumberOfElements < 0 {
		return fmt.Errorf("field numberOfElements: negative (%d)", p.NumberOfElements)
	}
	if p.TotalElements != nil && *p.TotalElements < 0 {
		return fmt.Errorf("field totalElements: negative (%d)", *p.TotalElements)
	}
	return nil
}

// machine is a Machine.
type machine struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	ExternalID       string            `json:"externalId"`
	ExternalRegionID string            `json:"externalRegionId"`
	PowerState       string            `json:"powerState"`
	CloudAccountIDs  []string          `json:"cloudAccountIds"`
	ProjectID        string            `json:"projectId"`
	CustomProperties map[string]string `json:"customProperties"`
}

// cloudAccount is a CloudAccount.
type cloudAccount struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	Type             string            `json:"cloudAccountType"`
	Properties       map[string]string `json:"cloudAccountProperties"` // hostName of a vCenter
	CustomProperties map[string]string `json:"customProperties"`
}

// cspToken is the answer to POST /csp/gateway/am/api/login?access_token.
type cspToken struct {
	RefreshToken string `json:"refresh_token"`
}

// authResponse is the answer to POST /iaas/api/login (AuthResponse).
type authResponse struct {
	TokenType string `json:"tokenType"`
	Token     string `json:"token"`
}

// parseRefreshToken reads the answer to the CSP login.
func parseRefreshToken(body []byte) (string, error) {
	var t cspToken
	if err := rest.DecodeJSON(body, &t); err != nil {
		return "", err
	}
	if t.RefreshToken == "" {
		return "", errors.New("field refresh_token: empty")
	}
	return t.RefreshToken, nil
}

// parseAuth reads the answer to the IaaS login: the bearer token.
func parseAuth(body []byte) (string, error) {
	var a authResponse
	if err := rest.DecodeJSON(body, &a); err != nil {
		return "", err
	}
	if a.Token == "" {
		return "", errors.New("field token: empty")
	}
	return a.Token, nil
}

// errorBody is the reference's ServiceErrorResponse (the CSP login answers
// a message too).
type errorBody struct {
	Message   string `json:"message"`
	ErrorCode int    `json:"errorCode"`
}

func errorMessage(b []byte) string {
	var e errorBody
	if rest.DecodeJSON(b, &e) == nil && e.Message != "" {
		return e.Message
	}
	return rest.Snippet(b)
}
