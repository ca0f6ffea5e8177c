package simhttp

import (
	"context"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCoreAndSessions(t *testing.T) {
	type faults struct{ ExpireAfter int }
	var c Core[faults]
	c.SetFaults(faults{ExpireAfter: 2})
	f, n := c.Begin()
	if f.ExpireAfter != 2 || n != 1 || c.Calls() != 1 || c.Faults() != f {
		t.Fatalf("begin: %+v %d, %d calls", f, n, c.Calls())
	}
	var s Sessions[string]
	s.Open("a", "xsrf")
	want := func(v string) bool { return v == "xsrf" }
	if got := s.Use("a", false, f.ExpireAfter, func(string) bool { return false }); got != Refused {
		t.Fatalf("refused call: %v", got)
	}
	for i := range 2 {
		if got := s.Use("a", false, f.ExpireAfter, want); got != Accepted {
			t.Fatalf("call %d: %v", i+1, got)
		}
	}
	if got := s.Use("a", false, f.ExpireAfter, want); got != Gone {
		t.Fatalf("call 3 after ExpireAfter 2: %v", got)
	}
	s.Open("b", "")
	if s.Use("b", true, 0, nil) != Gone || s.Use("b", false, 0, nil) != Gone || s.Logins() != 2 {
		t.Fatal("a rejected session lives on")
	}
	s.Open("c", "")
	s.ExpireAll()
	if s.Use("c", false, 0, nil) != Gone {
		t.Fatal("ExpireAll")
	}
}

func TestWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
	if Wait(r, time.Hour) {
		t.Fatal("waited for a client that gave up")
	}
	if !Wait(r, 0) {
		t.Fatal("no delay")
	}
}

func TestLoadState(t *testing.T) {
	type state struct {
		User string `json:"user"`
	}
	if st, err := LoadState[state]("srm", []byte(`{"user":"u"}`)); err != nil || st.User != "u" {
		t.Fatal(st, err)
	}
	if _, err := LoadState[state]("srm", []byte(`{"usr":"u"}`)); err == nil || !strings.HasPrefix(err.Error(), `srm simulator state: json: unknown field "usr"`) {
		t.Fatal(err)
	}
}

func TestIntParams(t *testing.T) {
	for _, tc := range []struct {
		query     string
		skip, top int
		bad       string
	}{
		{"", 0, 50, ""},
		{"$skip=4&$top=2", 4, 2, ""},
		{"$top=7", 0, 7, ""},
		{"$skip=-1&$top=2", 0, 50, "$skip"},
		{"$skip=0&$top=0", 0, 50, "$top"},
		{"$skip=x", 0, 50, "$skip"},
		{"$skip=3&$top=1.5", 3, 50, "$top"},
	} {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		skip, top := 0, 50
		bad := IntParams(q, Int("$skip", 0, &skip), Int("$top", 1, &top))
		if bad != tc.bad || skip != tc.skip || top != tc.top {
			t.Errorf("%q: skip %d, top %d, bad %q; want %d, %d, %q", tc.query, skip, top, bad, tc.skip, tc.top, tc.bad)
		}
	}
}
