package horizondaas

import (
	"encoding/xml"
	"fmt"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// The XML documents the collector reads (simulator/simulator.go says which
// element names come from the reference and which are assumed). The
// session's user elements (userName, userGuid, userDomain) are personal
// data: they are deliberately not decoded, so they never reach memory past
// the XML tokenizer.

// credentialsDoc is the login body, the reference's DtCredentials.
type credentialsDoc struct {
	XMLName  xml.Name `xml:"DtCredentials"`
	Type     string   `xml:"type,attr"`
	Username string   `xml:"username"`
	Password string   `xml:"password"`
	Domain   string   `xml:"domain"`
}

// orgList is the answer of /security/manager/organizations.
type orgList struct {
	XMLName xml.Name       `xml:"List"`
	Orgs    []organization `xml:"DtOrganization"`
}

// organization is a DtOrganization: the service provider itself or a
// tenant.
type organization struct {
	ID      string `xml:"id,attr"`
	Name    string `xml:"name"`
	OrgType string `xml:"orgType"` // TENANT or SERVICE_PROVIDER
	Enabled *bool  `xml:"enabled"` // absent: enabled
}

// quotaList is the answer of /security/organization/{id}/quotas.
type quotaList struct {
	XMLName xml.Name `xml:"List"`
	Quotas  []quota  `xml:"DtQuota"`
}

// quota is a DtQuota of a tenant.
type quota struct {
	Type    string `xml:"type"`
	Edition string `xml:"licenseEdition"`
	Limit   int    `xml:"limit"`
}

// sessionReport is one page of /session/manager/sessions.
type sessionReport struct {
	XMLName  xml.Name  `xml:"DtSessionReport"`
	Count    int       `xml:"sessionCount"`
	Total    int       `xml:"sessionTotalCount"`
	Sessions []session `xml:"DtSession"`
}

// session is a DtSession, without its user.
type session struct {
	ID     string `xml:"id,attr"`
	PoolID string `xml:"poolId"`
	VMName string `xml:"vmName"`
	State  string `xml:"state"`
}

// errorDoc is an error answer, a DtError.
type errorDoc struct {
	XMLName xml.Name `xml:"DtError"`
	Code    string   `xml:"code"`
	Message string   `xml:"message"`
}

// check refuses a page whose counts cannot be.
func (p *sessionReport) check() error {
	if p.Total < 0 {
		return fmt.Errorf("field sessionTotalCount: negative (%d)", p.Total)
	}
	if p.Count < 0 {
		return fmt.Errorf("field sessionCount: negative (%d)", p.Count)
	}
	return nil
}

// parseSessions, parseOrgs and parseQuotas read one answer as DoXML does
// (the fuzz tests call them).
func parseSessions(body []byte) (*sessionReport, error) {
	p := new(sessionReport)
	if err := rest.DecodeXML(body, p); err != nil {
		return nil, err
	}
	return p, p.check()
}

func parseOrgs(body []byte) (*orgList, error) {
	l := new(orgList)
	return l, rest.DecodeXML(body, l)
}

func parseQuotas(body []byte) (*quotaList, error) {
	l := new(quotaList)
	return l, rest.DecodeXML(body, l)
}

// errorMessage is the message of an error answer.
func errorMessage(b []byte) string {
	var e errorDoc
	if rest.DecodeXML(b, &e) == nil && e.Message != "" {
		if e.Code != "" {
			return fmt.Sprintf("%s (%s)", e.Message, e.Code)
		}
		return e.Message
	}
	return rest.Snippet(b)
}
