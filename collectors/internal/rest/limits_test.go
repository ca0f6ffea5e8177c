package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// testPage is a list page as the collectors decode them.
type testPage struct {
	Count  int        `json:"result_count"`
	Cursor string     `json:"cursor"`
	Items  []testItem `json:"results"`
	Next   *testItem  `json:"next"`
}

type testItem struct {
	ID   string   `json:"id" xml:"id"`
	N    int      `json:"n" xml:"n"`
	Tags []string `json:"tags" xml:"tags>tag"`
	On   bool     `json:"on" xml:"on"`
}

// limitServer answers every call with the body of its path, from bodies.
func limitServer(t *testing.T, bodies map[string]func(w http.ResponseWriter)) (*Client, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bodies[r.URL.Path](w)
	}))
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	c, err := NewClient("nsxt", &collectors.Target{Endpoint: ts.URL, Username: "u", Thumbprint: tlsutil.Thumbprint(ts.Certificate().Raw)}, "")
	if err != nil {
		t.Fatal(err)
	}
	c.Limits = Limits{Response: 64 << 10, Object: 4 << 10, Budget: 32 << 10}
	return c, &conns
}

func write(s string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) { _, _ = w.Write([]byte(s)) }
}

// endless writes head, then item forever (until the client hangs up).
func endless(head, item string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		_, _ = w.Write([]byte(head))
		chunk := []byte(strings.Repeat(item, 1+(32<<10)/len(item)))
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
}

func TestDoJSONLimits(t *testing.T) {
	item := `{"id":"vm-1","n":1,"tags":["a","b"],"on":true}`
	many := func(n int) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }
	c, conns := limitServer(t, map[string]func(http.ResponseWriter){
		"/ok":           write(`{"results":[` + many(100) + `],"result_count":100,"cursor":"c2"}` + "\n"),
		"/endless":      endless(`{"results":[`, item+","),
		"/big-object":   write(`{"results":[{"id":"` + strings.Repeat("x", 8<<10) + `"}]}`),
		"/empty-items":  endless(`{"results":[`, "{},"),
		"/spaces":       endless(`{"results":`, "    "),
		"/big-unknown":  write(`{"_links":[` + strings.Repeat(`"abcdefgh",`, 4000) + `"z"],"result_count":1}`),
		"/long-field":   write(`{"cursor":"` + strings.Repeat("c", 8<<10) + `"}`),
		"/over-answer":  write(`{"_links":[` + strings.Repeat(`"abcdefgh",`, 8000) + `"z"],"result_count":1}`),
		"/type-error":   write(`{"results":[{"id":"a","n":"seven"}]}`),
		"/truncated":    write(`{"results":[` + item),
		"/single-value": write(`{"n": 7}`),
	})
	ctx := context.Background()

	var p testPage
	if err := c.DoJSON(ctx, http.MethodGet, "/ok", nil, nil, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 100 || p.Count != 100 || p.Cursor != "c2" || p.Items[99].ID != "vm-1" || !p.Items[0].On || len(p.Items[5].Tags) != 2 {
		t.Fatalf("page %+v", p)
	}
	if err := c.DoJSON(ctx, http.MethodGet, "/ok", nil, nil, &p); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for two calls: the connection was not reused", n)
	}
	var big testPage
	if err := c.DoJSON(ctx, http.MethodGet, "/big-unknown", nil, nil, &big); err != nil || big.Count != 1 {
		t.Errorf("an unknown field larger than Object, within Response: %v", err)
	}

	for _, tc := range []struct {
		path, which, want string
	}{
		{"/endless", LimitBudget, "GET /endless: the answer decodes to more than 32 KiB, the limit of the nsxt memory budget for one answer: stopped reading"},
		{"/empty-items", LimitBudget, "limit of the nsxt memory budget"},
		{"/big-object", LimitObject, "GET /big-object: one object of the answer is larger than 4 KiB, the limit of one nsxt object: stopped reading"},
		{"/spaces", LimitObject, "larger than 4 KiB"},
		{"/long-field", LimitObject, "larger than 4 KiB"},
		{"/over-answer", LimitResponse, "GET /over-answer: the answer is larger than 64 KiB, the limit of one nsxt answer (more than it could send for one page): stopped reading"},
	} {
		var p testPage
		err := c.DoJSON(ctx, http.MethodGet, tc.path, nil, nil, &p)
		var le *LimitError
		if !errors.Is(err, ErrTooLarge) || !errors.As(err, &le) || le.Which != tc.which || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want the %s limit: %q", tc.path, err, tc.which, tc.want)
		}
	}
	for path, want := range map[string]string{
		"/type-error": "malformed body: field results.n: expected a int, got a JSON string",
		"/truncated":  "malformed body: truncated JSON",
	} {
		var p testPage
		if err := c.DoJSON(ctx, http.MethodGet, path, nil, nil, &p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", path, err, want)
		}
	}
	// Not a struct: decoded whole, as one object.
	var m map[string]int
	if err := c.DoJSON(ctx, http.MethodGet, "/single-value", nil, nil, &m); err != nil || m["n"] != 7 {
		t.Errorf("map: %v %v", m, err)
	}
	if err := c.DoJSON(ctx, http.MethodGet, "/big-object", nil, nil, &m); !errors.Is(err, ErrTooLarge) {
		t.Errorf("map of a big object: %v", err)
	}
	// Do reads whole, within Object.
	if _, _, err := c.Do(ctx, http.MethodGet, "/ok", nil, nil); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "larger than 4 KiB") {
		t.Errorf("Do of a page larger than Object: %v", err)
	}
}

func TestDoXMLLimits(t *testing.T) {
	type wires struct {
		Total int        `xml:"dataPage>pagingInfo>totalCount"`
		Wires []testItem `xml:"dataPage>virtualWire"`
	}
	wire := "<virtualWire><id>virtualwire-1</id><n>5001</n><on>true</on></virtualWire>"
	c, _ := limitServer(t, map[string]func(http.ResponseWriter){
		"/ok":        write("<?xml version=\"1.0\"?>\n<virtualWires><dataPage><pagingInfo><totalCount>3</totalCount></pagingInfo>" + strings.Repeat(wire, 3) + "</dataPage></virtualWires>"),
		"/endless":   endless("<virtualWires><dataPage>", wire),
		"/empty":     endless("<virtualWires><dataPage>", "<virtualWire/>"),
		"/long-text": write("<virtualWires><dataPage><virtualWire><id>" + strings.Repeat("x", 8<<10) + "</id></virtualWire></dataPage></virtualWires>"),
		"/long-attr": write(`<virtualWires a="` + strings.Repeat("x", 8<<10) + `"></virtualWires>`),
		"/bad-bool":  write("<virtualWires>\n<dataPage>\n" + strings.Replace(wire, "true", "maybe", 1) + "</dataPage></virtualWires>"),
		"/bad-close": write("<virtualWires>\n<dataPage>\n<virtualWire><id><b>x</id></virtualWire></dataPage></virtualWires>"),
	})
	ctx := context.Background()
	var w wires
	if err := c.DoXML(ctx, http.MethodGet, "/ok", nil, nil, &w); err != nil || w.Total != 3 || len(w.Wires) != 3 || w.Wires[2].N != 5001 || !w.Wires[0].On {
		t.Fatalf("%+v %v", w, err)
	}
	for path, which := range map[string]string{"/endless": LimitBudget, "/empty": LimitBudget, "/long-text": LimitObject, "/long-attr": LimitObject} {
		var w wires
		err := c.DoXML(ctx, http.MethodGet, path, nil, nil, &w)
		var le *LimitError
		if !errors.As(err, &le) || le.Which != which || !strings.Contains(err.Error(), "GET "+path+": ") {
			t.Errorf("%s: error %v, want the %s limit", path, err, which)
		}
	}
	for path, want := range map[string]string{
		"/bad-bool":  `malformed body: element virtualWires>dataPage>virtualWire>on: "maybe" is not a valid boolean`,
		"/bad-close": "malformed body: invalid XML at line 3: element <b> closed by </id>",
	} {
		var w wires
		if err := c.DoXML(ctx, http.MethodGet, path, nil, nil, &w); err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", path, err, want)
		}
	}
}

// jsonCases are answers DecodeJSON must read as encoding/json's Decoder
// does.
var jsonCases = []string{
	`{"results":[{"id":"a","n":1,"tags":["x"],"on":true},{"id":"b"}],"result_count":2,"cursor":"c"}`,
	`{"RESULTS":[{"ID":"a"}],"Result_Count":1}`,
	`{"results":null,"next":{"id":"n"},"extra":{"deep":[1,{"a":[]}]},"cursor":null}`,
	`{"results":[],"results":[{"id":"second"}]}`,
	`{"results":[{"id":"a","n":"seven"}]}`,
	`{"results":[5]}`,
	`{"result_count":"many"}`,
	`{"results":{"id":"a"}}`,
	`[1,2]`,
	`null`,
	`{"results":[{"id":"a"}]`,
	`{"results":[{"id":"a"},]}`,
	`{"results":[{"id":"a"}]} trailing`,
	`{"results":[{"id":"a" "n":1}]}`,
	``,
	` {"cursor":"\u00e9\n"} `,
}

func TestDecodeJSONLikeDecoder(t *testing.T) {
	for _, in := range jsonCases {
		checkLikeDecoder(t, []byte(in))
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, in := range jsonCases {
		f.Add([]byte(in))
	}
	f.Fuzz(checkLikeDecoder)
}

// checkLikeDecoder checks that DecodeJSON decodes in what
// json.Decoder.Decode does (the decoding before answers were streamed), and
// fails where it fails, with the same field named.
func checkLikeDecoder(t *testing.T, in []byte) {
	var want, got testPage
	wantErr := json.NewDecoder(bytes.NewReader(in)).Decode(&want)
	gotErr := DecodeJSON(in, &got)
	switch {
	case wantErr == nil && gotErr != nil:
		t.Fatalf("%s: error %v, encoding/json decodes %+v", in, gotErr, want)
	case wantErr != nil && gotErr == nil:
		t.Fatalf("%s: decoded %+v, encoding/json fails: %v", in, got, wantErr)
	case wantErr == nil && !reflect.DeepEqual(got, want):
		t.Fatalf("%s: decoded %+v, encoding/json %+v", in, got, want)
	case gotErr != nil && !strings.HasPrefix(gotErr.Error(), "malformed body: "):
		t.Fatalf("%s: unhelpful error %v", in, gotErr)
	}
	var te *json.UnmarshalTypeError
	if errors.As(wantErr, &te) && !strings.Contains(gotErr.Error(), "field "+te.Field+":") {
		t.Fatalf("%s: error %v, encoding/json names field %q", in, gotErr, te.Field)
	}
}
