package vra7

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// page is one page of a catalog list.
type page struct {
	Content  []resource `json:"content"`
	Metadata struct {
		Size          int `json:"size"`
		TotalElements int `json:"totalElements"`
		TotalPages    int `json:"totalPages"`
		Number        int `json:"number"`
		Offset        int `json:"offset"`
	} `json:"metadata"`
}

// parsePage reads one page of the resource list (as the collector's
// streaming decode does; the fuzz tests call it).
func parsePage(body []byte) (*page, error) {
	p := new(page)
	if err := rest.DecodeJSON(body, p); err != nil {
		return nil, err
	}
	return p, p.check()
}

// check refuses a page whose paging fields cannot be.
func (p *page) check() error {
	m := &p.Metadata
	switch {
	case m.TotalPages < 0:
		return fmt.Errorf("field metadata.totalPages: negative (%d)", m.TotalPages)
	case m.TotalElements < 0:
		return fmt.Errorf("field metadata.totalElements: negative (%d)", m.TotalElements)
	case m.Number < 0:
		return fmt.Errorf("field metadata.number: negative (%d)", m.Number)
	}
	return nil
}

// resource is a ConsumerResource, with the resourceData entries the
// collector reads.
type resource struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	Status          string `json:"status"`
	ResourceTypeRef struct {
		ID string `json:"id"`
	} `json:"resourceTypeRef"`
	Organization struct {
		TenantRef      string `json:"tenantRef"`
		SubtenantLabel string `json:"subtenantLabel"`
	} `json:"organization"`
	Data resourceData `json:"resourceData"`
}

// Keys of resourceData the collector reads.
const (
	KeyMachineName   = "MachineName"
	KeyInterfaceType = "MachineInterfaceType"
	KeyMachineStatus = "MachineStatus"
	KeyMoRef         = "EXTERNAL_REFERENCE_ID"
	KeyVCenterUUID   = "endpointExternalReferenceId"
)

var wanted = map[string]bool{KeyMachineName: true, KeyInterfaceType: true, KeyMachineStatus: true, KeyMoRef: true, KeyVCenterUUID: true}

// resourceData keeps the wanted entries of {"entries": [{"key", "value":
// {"type", "value"}}]} as text; the others (networks, disks, snapshots) are
// passed over.
type resourceData map[string]string

// UnmarshalJSON implements json.Unmarshaler.
func (d *resourceData) UnmarshalJSON(b []byte) error {
	var raw struct {
		Entries []struct {
			Key   string          `json:"key"`
			Value json.RawMessage `json:"value"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	m := resourceData{}
	for _, e := range raw.Entries {
		if !wanted[e.Key] || len(e.Value) == 0 || string(e.Value) == "null" {
			continue
		}
		var v struct {
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(e.Value, &v); err != nil {
			return fmt.Errorf("entry %s: %w", e.Key, err)
		}
		s, err := scalar(v.Value)
		if err != nil {
			return fmt.Errorf("entry %s: %w", e.Key, err)
		}
		m[e.Key] = s
	}
	*d = m
	return nil
}

// scalar is a string, number or boolean JSON value as text ("" for null).
func scalar(b json.RawMessage) (string, error) {
	t := strings.TrimSpace(string(b))
	switch {
	case t == "" || t == "null":
		return "", nil
	case t[0] == '"':
		var s string
		err := json.Unmarshal(b, &s)
		return s, err
	case t == "true" || t == "false":
		return t, nil
	}
	if _, err := strconv.ParseFloat(t, 64); err == nil {
		return t, nil
	}
	return "", errors.New("expected a string, number or boolean value")
}

// token is the answer to POST /identity/api/tokens.
type token struct {
	Expires string `json:"expires"`
	ID      string `json:"id"`
	Tenant  string `json:"tenant"`
}

// parseToken reads the answer to a login.
func parseToken(body []byte) (string, error) {
	var t token
	if err := rest.DecodeJSON(body, &t); err != nil {
		return "", err
	}
	if t.ID == "" {
		return "", errors.New("field id: empty")
	}
	return t.ID, nil
}

// errorBody is the API's error answer.
type errorBody struct {
	Errors []struct {
		Code          int    `json:"code"`
		Message       string `json:"message"`
		SystemMessage string `json:"systemMessage"`
	} `json:"errors"`
}

// codeAuthFailed is the error code of a refused login ("Authentication
// failed"), which some releases answer with 400.
const codeAuthFailed = 90135

func errorMessage(b []byte) string {
	var e errorBody
	if rest.DecodeJSON(b, &e) == nil && len(e.Errors) > 0 && e.Errors[0].Message != "" {
		return fmt.Sprintf("%s (error %d)", e.Errors[0].Message, e.Errors[0].Code)
	}
	return rest.Snippet(b)
}
