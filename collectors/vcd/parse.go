package vcd

import (
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// versionInfo is one entry of GET /api/versions.
type versionInfo struct {
	Version    string `xml:"Version"`
	Deprecated bool   `xml:"deprecated,attr"`
}

// parseVersions reads the SupportedVersions document.
func parseVersions(body []byte) ([]versionInfo, error) {
	var doc struct {
		XMLName  xml.Name
		Versions []versionInfo `xml:"VersionInfo"`
	}
	if err := xml.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("malformed SupportedVersions document: %w", err)
	}
	if doc.XMLName.Local != "SupportedVersions" {
		return nil, fmt.Errorf("malformed SupportedVersions document: root element is %q", doc.XMLName.Local)
	}
	for i, v := range doc.Versions {
		doc.Versions[i].Version = strings.TrimSpace(v.Version)
		if doc.Versions[i].Version == "" {
			return nil, fmt.Errorf("malformed SupportedVersions document: VersionInfo[%d].Version is empty", i)
		}
	}
	if len(doc.Versions) == 0 {
		return nil, errors.New("SupportedVersions document lists no VersionInfo")
	}
	return doc.Versions, nil
}

// versionLess orders "36.0" < "38.1" < "39.0" numerically per component.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// stable reports whether v is a released "major.minor" version (VCD also
// lists pre-releases such as "39.0.0-alpha").
func stable(v string) bool {
	major, minor, ok := strings.Cut(v, ".")
	_, err1 := strconv.Atoi(major)
	_, err2 := strconv.Atoi(minor)
	return ok && err1 == nil && err2 == nil
}

// pickVersion chooses the API version to speak: want if offered, else the
// highest non-deprecated offered version at least MinAPIVersion.
func pickVersion(offered []versionInfo, want string) (string, error) {
	list := make([]string, 0, len(offered))
	for _, v := range offered {
		list = append(list, v.Version)
	}
	slices.SortFunc(list, func(a, b string) int {
		if versionLess(a, b) {
			return -1
		}
		if versionLess(b, a) {
			return 1
		}
		return 0
	})
	if want != "" {
		if slices.Contains(list, want) {
			return want, nil
		}
		return "", fmt.Errorf("%w: api_version %s is not offered; the product offers %s", ErrVersion, want, strings.Join(list, ", "))
	}
	best := ""
	for _, v := range offered {
		if v.Deprecated || !stable(v.Version) || versionLess(v.Version, MinAPIVersion) {
			continue
		}
		if best == "" || versionLess(best, v.Version) {
			best = v.Version
		}
	}
	if best == "" {
		return "", fmt.Errorf("%w: no offered version is %s or later (needed for the provider login); the product offers %s", ErrVersion, MinAPIVersion, strings.Join(list, ", "))
	}
	return best, nil
}

// ref is an OpenAPI reference {name, id}.
type ref struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

// sessionInfo is the body of the provider login (CurrentSessionInfo).
type sessionInfo struct {
	ID       string `json:"id"`
	Site     *ref   `json:"site"`
	User     ref    `json:"user"`
	Org      ref    `json:"org"`
	Location string `json:"location"`
}

// parseSession reads the login answer.
func parseSession(body []byte) (sessionInfo, error) {
	var s sessionInfo
	if err := rest.DecodeJSON(body, &s); err != nil {
		return sessionInfo{}, fmt.Errorf("session: %w", err)
	}
	return s, nil
}

// siteID is the VCD instance's identity: the site id of the session, else
// the site part of its location ("<site uuid>@<host>").
func (s sessionInfo) siteID() string {
	if s.Site != nil && s.Site.ID != "" {
		return s.Site.ID
	}
	if id, _, ok := strings.Cut(s.Location, "@"); ok && id != "" {
		return "urn:vcloud:site:" + id
	}
	return ""
}

// link is a query result link.
type link struct {
	Rel  string `json:"rel"`
	Href string `json:"href"`
}

// recordsPage is one page of a records query; R is the record type.
type recordsPage[R any] struct {
	Name     string `json:"name"`
	Page     int    `json:"page"`
	PageSize int    `json:"pageSize"`
	Total    int    `json:"total"`
	Link     []link `json:"link"`
	Record   []R    `json:"record"`
}

func (p *recordsPage[R]) hasNext() bool {
	for _, l := range p.Link {
		if l.Rel == "nextPage" {
			return true
		}
	}
	return false
}

// vmRecord holds the QueryResultAdminVMRecordType attributes used.
type vmRecord struct {
	Href           string `json:"href"`
	Name           string `json:"name"`
	ContainerName  string `json:"containerName"`
	Status         string `json:"status"`
	Vdc            string `json:"vdc"`
	HostName       string `json:"hostName"`
	IsVAppTemplate bool   `json:"isVAppTemplate"`
	IsDeleted      bool   `json:"isDeleted"`
	NumberOfCpus   int    `json:"numberOfCpus"`
	MemoryMB       int    `json:"memoryMB"`
	Vc             string `json:"vc"`
	Moref          string `json:"moref"`
	Org            string `json:"org"`
}

// nameRecord is a record of which only the href and name are used
// (QueryResultOrgRecordType, QueryResultAdminVdcRecordType).
type nameRecord struct {
	Href string `json:"href"`
	Name string `json:"name"`
}

// vcRecord is QueryResultVirtualCenterRecordType.
type vcRecord struct {
	Href string `json:"href"`
	Name string `json:"name"`
	UUID string `json:"uuid"`
}

// parsePage reads one records page (as get does from the answer).
func parsePage[R any](body []byte) (*recordsPage[R], error) {
	p := new(recordsPage[R])
	if err := rest.DecodeJSON(body, p); err != nil {
		return nil, err
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	return p, nil
}

// check validates a decoded records page.
func (p *recordsPage[R]) check() error {
	if p.Page < 1 || p.PageSize < 1 || p.Total < 0 {
		return fmt.Errorf("field page/pageSize/total: invalid values %d/%d/%d", p.Page, p.PageSize, p.Total)
	}
	if len(p.Record) > p.PageSize {
		return fmt.Errorf("field record: %d records on a page of %d", len(p.Record), p.PageSize)
	}
	return nil
}

// lastSegment is the id at the end of an href (".../api/org/<uuid>").
func lastSegment(href string) string {
	if i := strings.LastIndexByte(href, '/'); i >= 0 {
		return href[i+1:]
	}
	return href
}
