package web

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/usagemeter/usagemeter/internal/store"
)

// documented lists the document's operations as "METHOD /path".
func documented(t *testing.T) (*openapi3.T, []string) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	var ops []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	slices.Sort(ops)
	return doc, ops
}

// TestOpenAPIMatchesRoutes: every route in the document is registered and
// every registered route is in the document; the document is valid
// OpenAPI 3 and is what /api/v1/openapi.json serves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	_, ops := documented(t)
	a := &api{}
	registered := a.routes(http.NewServeMux())
	slices.Sort(registered)
	for _, op := range ops {
		if !slices.Contains(registered, op) {
			t.Errorf("documented but not served: %s", op)
		}
	}
	for _, r := range registered {
		if !slices.Contains(ops, r) {
			t.Errorf("served but not documented: %s", r)
		}
	}
	if len(ops) < 35 {
		t.Errorf("only %d operations documented", len(ops))
	}
}

// TestEveryOperationNeedsAuthentication: without a session or token,
// every operation but login and the document itself answers 401 with a
// JSON error; so does a forged session cookie and a made-up token.
func TestEveryOperationNeedsAuthentication(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, ops := documented(t)
	forged := e.newClient()
	forged.Jar.SetCookies(mustURL(t, e.srv.URL), []*http.Cookie{{Name: e.auth.CookieName(), Value: "forged-" + strings.Repeat("A", 43), Path: "/"}})
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		if path == "/login" || path == "/openapi.json" {
			continue
		}
		path = strings.NewReplacer("{id}", "1", "{key}", "KEY-1").Replace(path)
		var body any
		if method != "GET" && method != "DELETE" {
			body = map[string]any{}
		}
		for name, c := range map[string]*http.Client{"none": e.newClient(), "forged cookie": forged} {
			r := e.do(c, method, Prefix+path, body)
			mustStatus(t, r, http.StatusUnauthorized)
			if msg := r.errorText(t); !strings.Contains(msg, "log in") {
				t.Errorf("%s %s (%s): %q", method, path, name, msg)
			}
		}
		r := e.do(e.newClient(), method, Prefix+path, body, header("Authorization", "Bearer umt_madeup"))
		mustStatus(t, r, http.StatusUnauthorized)
		if msg := r.errorText(t); msg != "the API token is not valid" {
			t.Errorf("%s %s with a made-up token: %q", method, path, msg)
		}
	}
	// The document itself is public.
	r := e.do(e.newClient(), "GET", Prefix+"/openapi.json", nil)
	mustStatus(t, r, http.StatusOK)
	if string(r.body) != string(OpenAPI) {
		t.Fatal("/api/v1/openapi.json is not the embedded document")
	}
	// An unknown API route is a JSON 404, not a page.
	r = e.do(e.newClient(), "GET", Prefix+"/nothing-here", nil)
	mustStatus(t, r, http.StatusNotFound)
	if !strings.Contains(r.errorText(t), "no such API route") {
		t.Fatalf("unknown route: %s", r.body)
	}
}

// TestEveryOperationRefusesBadInput: with a valid session, every
// state-changing operation refuses a browser's cross-origin request (403,
// nothing audited); every operation with an {id} refuses one that is not
// a number, and every one with a JSON body refuses an unknown field, each
// with a JSON error naming the cause.
func TestEveryOperationRefusesBadInput(t *testing.T) {
	e := newEnv(t, envOptions{})
	mustStatus(t, e.login(nil, adminUser, adminPass), http.StatusOK)
	doc, ops := documented(t)
	before, err := e.app.Store.Audit(context.Background(), store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		concrete := strings.NewReplacer("{id}", "1", "{key}", "KEY-1").Replace(path)
		o := doc.Paths.Find(path).GetOperation(method)
		if method != "GET" {
			r := e.do(nil, method, Prefix+concrete, map[string]any{}, header("Sec-Fetch-Site", "cross-site"), header("Origin", "https://evil.example"))
			mustStatus(t, r, http.StatusForbidden)
			if msg := r.errorText(t); !strings.Contains(msg, "cross-origin") {
				t.Errorf("%s: %q", op, msg)
			}
		}
		if strings.Contains(path, "{id}") {
			r := e.do(nil, method, Prefix+strings.ReplaceAll(path, "{id}", "abc"), map[string]any{})
			mustStatus(t, r, http.StatusBadRequest)
			if msg := r.errorText(t); msg != `id "abc": not a positive number` {
				t.Errorf("%s with id abc: %q", op, msg)
			}
		}
		if o.RequestBody != nil && path != "/login" {
			r := e.do(nil, method, Prefix+concrete, `{"no_such_field": 1}`)
			mustStatus(t, r, http.StatusBadRequest)
			if msg := r.errorText(t); !strings.Contains(msg, `unknown field "no_such_field"`) {
				t.Errorf("%s with an unknown field: %q", op, msg)
			}
			r = e.do(nil, method, Prefix+concrete, `[`)
			mustStatus(t, r, http.StatusBadRequest)
		}
	}
	after, err := e.app.Store.Audit(context.Background(), store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("refused requests were audited: %+v", after[:len(after)-len(before)])
	}
}
