package vcda

import (
	"fmt"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// page is one page of a VCDA list: {"items": [...], "total": N}.
type page[T any] struct {
	Items []T `json:"items"`
	Total int `json:"total"`
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
	if p.Total < 0 {
		return fmt.Errorf("field total: negative (%d)", p.Total)
	}
	return nil
}

// sessionDetails is C4SessionDetails, the answer to POST /sessions.
type sessionDetails struct {
	User               string   `json:"user"`
	Roles              []string `json:"roles"`
	AuthenticatedSites []struct {
		Org  string `json:"org"`
		Site string `json:"site"`
	} `json:"authenticatedSites"`
}

// parseSession reads the answer to a login: the local site, "" when the
// session names none.
func parseSession(body []byte) (site string, err error) {
	var s sessionDetails
	if err := rest.DecodeJSON(body, &s); err != nil {
		return "", err
	}
	if len(s.AuthenticatedSites) > 0 {
		site = s.AuthenticatedSites[0].Site
	}
	return site, nil
}

// about is AboutInfo (GET /diagnostics/about).
type about struct {
	ProductName  string `json:"productName"`
	BuildVersion string `json:"buildVersion"`
	InstanceID   string `json:"instanceId"`
}

func parseAbout(body []byte) (about, error) {
	var a about
	err := rest.DecodeJSON(body, &a)
	return a, err
}

// endpoint is a replication's source or destination.
type endpoint struct {
	Site      string  `json:"site"`
	Org       string  `json:"org"`
	VdcName   string  `json:"vdcName"`
	VAppID    string  `json:"vappId"`
	VAppName  string  `json:"vappName"`
	VMID      *string `json:"vmId"`
	VimServer string  `json:"vimServerUuid"`
}

// vmReplication is a VM replication record.
type vmReplication struct {
	ID                  string   `json:"id"`
	IsMigration         bool     `json:"isMigration"`
	VMName              string   `json:"vmName"`
	DataConnectionState string   `json:"dataConnectionState"`
	Source              endpoint `json:"source"`
	Destination         endpoint `json:"destination"`
}

// vappReplication is a vApp replication record, with its VMs'.
type vappReplication struct {
	ID             string          `json:"id"`
	IsMigration    bool            `json:"isMigration"`
	Source         endpoint        `json:"source"`
	Destination    endpoint        `json:"destination"`
	VMReplications []vmReplication `json:"vmReplications"`
}

// apiError is the reference's ApiError.
type apiError struct {
	Code string `json:"code"`
	Msg  string `json:"msg"`
}

// errorMessage is the message of an error answer: "msg (code)"; the
// stacktrace is left out.
func errorMessage(b []byte) string {
	var e apiError
	if rest.DecodeJSON(b, &e) == nil && e.Msg != "" {
		if e.Code != "" {
			return fmt.Sprintf("%s (%s)", e.Msg, e.Code)
		}
		return e.Msg
	}
	return rest.Snippet(b)
}
