package vra7

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

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

// check refuses a page whose paging fields cannot be, or whose resources
// give a list or an object where the collector reads a value.
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
	for i := range p.Content {
		for _, e := range p.Content[i].Data.Entries {
			if e.Value.Value.notScalar && wanted[e.Key] {
				return fmt.Errorf("field content.resourceData: entry %s: expected a string, number or boolean value", e.Key)
			}
		}
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

// resourceData is {"entries": [{"key", "value": {"type", "value"}}]}: each
// entry's value kept as text when it is a string, number or boolean; lists
// and objects (networks, disks, snapshots) are passed over without a copy.
type resourceData struct {
	Entries []struct {
		Key   string `json:"key"`
		Value struct {
			Value scalarText `json:"value"`
		} `json:"value"`
	} `json:"entries"`
}

// get is the text of the entry key, "" when there is none.
func (d *resourceData) get(key string) string {
	for i := range d.Entries {
		if d.Entries[i].Key == key {
			return d.Entries[i].Value.Value.s
		}
	}
	return ""
}

// scalarText is a JSON string, number or boolean as text ("" for null);
// notScalar marks a list or an object.
type scalarText struct {
	s         string
	notScalar bool
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *scalarText) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*t = scalarText{}
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = scalarText{s: s}
	case b[0] == '{' || b[0] == '[':
		*t = scalarText{notScalar: true}
	default: // a number or a boolean, already checked by the decoder
		*t = scalarText{s: string(b)}
	}
	return nil
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
