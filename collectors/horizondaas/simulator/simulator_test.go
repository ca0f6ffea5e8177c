package simulator_test

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/collectors/horizondaas/simulator"
)

func state() simulator.State {
	st := simulator.State{User: "meter", Password: "pw", Domain: "SP",
		Tenants: []simulator.Tenant{{ID: "1001", Name: "Acme", Edition: "ENTERPRISE", Quota: 10}}}
	for i := range 5 {
		st.Tenants[0].Sessions = append(st.Tenants[0].Sessions, simulator.Session{ID: fmt.Sprintf("s-%d", i), VM: fmt.Sprintf("VDI-%d", i),
			User: fmt.Sprintf("user%d", i)})
	}
	return st
}

// call sends one request to s and returns the status, headers and body.
func call(s *simulator.DaaS, method, path, body string, hdr http.Header) (int, http.Header, string) {
	req := httptest.NewRequest(method, "https://daas.example"+path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec.Code, rec.Header(), rec.Body.String()
}

const creds = `<DtCredentials type="CREDENTIALS"><username>meter</username><password>pw</password><domain>SP</domain></DtCredentials>`

// Example: log in, keep the Authorization and x-dt-csrf-header headers,
// then page through a tenant's sessions with start and limit.
func Example() {
	s := simulator.New(state())
	_, hdr, _ := call(s, http.MethodPost, "/dt-rest/v100/system/authenticate/credentials", creds, http.Header{"Content-Type": {"application/xml"}})
	auth := http.Header{"Authorization": {hdr.Get("Authorization")}}
	for start := 0; ; {
		_, _, body := call(s, http.MethodGet, fmt.Sprintf("/dt-rest/v100/session/manager/sessions?orgId=1001&start=%d&limit=2", start), "", auth)
		var page struct {
			Total    int `xml:"sessionTotalCount"`
			Sessions []struct {
				ID string `xml:"id,attr"`
			} `xml:"DtSession"`
		}
		_ = xml.Unmarshal([]byte(body), &page)
		for _, x := range page.Sessions {
			fmt.Print(x.ID, " ")
		}
		start += len(page.Sessions)
		if len(page.Sessions) == 0 || start >= page.Total {
			break
		}
	}
	fmt.Println()
	// Output: s-0 s-1 s-2 s-3 s-4
}

func TestLoginAndHeaders(t *testing.T) {
	s := simulator.New(state())
	if code, _, body := call(s, http.MethodPost, "/dt-rest/v100/system/authenticate/credentials", strings.Replace(creds, ">pw<", ">bad<", 1), nil); code != http.StatusUnauthorized || !strings.Contains(body, "<DtError>") {
		t.Fatalf("wrong password: %d %s", code, body)
	}
	code, hdr, _ := call(s, http.MethodPost, "/dt-rest/v100/system/authenticate/credentials", creds, nil)
	auth, csrf := hdr.Get("Authorization"), hdr.Get("x-dt-csrf-header")
	if code != http.StatusOK || auth == "" || csrf == "" || s.Logins() != 1 {
		t.Fatalf("login: %d, Authorization %q, x-dt-csrf-header %q", code, auth, csrf)
	}
	if code, _, _ := call(s, http.MethodGet, "/dt-rest/v100/security/manager/organizations", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("no Authorization: %d", code)
	}
	if code, _, body := call(s, http.MethodGet, "/dt-rest/v100/security/manager/organizations", "", http.Header{"Authorization": {auth}}); code != http.StatusOK ||
		!strings.Contains(body, `<DtOrganization id="1000">`) || !strings.Contains(body, "<orgType>TENANT</orgType>") {
		t.Fatalf("organizations: %d %s", code, body)
	}
	// A call other than GET needs the CSRF header too.
	if code, _, _ := call(s, http.MethodDelete, "/dt-rest/v100/system/authenticate", "", http.Header{"Authorization": {auth}}); code != http.StatusUnauthorized {
		t.Fatalf("logout without x-dt-csrf-header: %d", code)
	}
	if code, _, _ := call(s, http.MethodDelete, "/dt-rest/v100/system/authenticate", "", http.Header{"Authorization": {auth}, "X-Dt-Csrf-Header": {csrf}}); code != http.StatusNoContent {
		t.Fatalf("logout: %d", code)
	}
	if code, _, _ := call(s, http.MethodGet, "/dt-rest/v100/security/manager/organizations", "", http.Header{"Authorization": {auth}}); code != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", code)
	}
	if code, _, body := call(s, http.MethodGet, "/dt-rest/system/platform", "", nil); code != http.StatusOK || !strings.Contains(body, `id="v100"`) {
		t.Fatalf("platform: %d %s", code, body)
	}
}

// TestServesPersonalData: the sessions name their users, as the platform
// does, so that the collector's tests can prove it keeps none.
func TestServesPersonalData(t *testing.T) {
	s := simulator.New(state())
	_, hdr, _ := call(s, http.MethodPost, "/dt-rest/v100/system/authenticate/credentials", creds, nil)
	_, _, body := call(s, http.MethodGet, "/dt-rest/v100/session/manager/sessions?orgId=1001", "", http.Header{"Authorization": {hdr.Get("Authorization")}})
	for _, want := range []string{"<userName>user3</userName>", "<userDomain>SP</userDomain>", "<sessionTotalCount>5</sessionTotalCount>", "<state>CONNECTED</state>"} {
		if !strings.Contains(body, want) {
			t.Errorf("sessions lack %s:\n%s", want, body)
		}
	}
}
