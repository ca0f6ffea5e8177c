package rest

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeOptions(t *testing.T) {
	type opts struct {
		Auth     string `json:"auth,omitempty"`
		PageSize int    `json:"page_size,omitempty"`
		//lint:ignore U1000 an unexported field, on purpose: it is not an option
		internal int
	}
	for _, tc := range []struct{ in, want string }{
		{``, ""},
		{` null `, ""},
		{`{"auth": "basic", "page_size": 3}`, ""},
		{`{"cursor": 1}`, `srm options: unknown option "cursor" (known: auth, page_size)`},
		{`{"page_size": "3"}`, "srm options: option page_size: expected a int, got a JSON string"},
		{`{} {}`, "srm options: trailing data after the JSON object"},
		{`{`, "srm options: unexpected EOF"},
	} {
		var o opts
		err := DecodeOptions("srm", json.RawMessage(tc.in), &o)
		if (tc.want == "") != (err == nil) || (err != nil && err.Error() != tc.want) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestDecodeXML(t *testing.T) {
	var v struct {
		N int `xml:"page>n"`
	}
	err := DecodeXML([]byte(`<doc><page><n>many</n></page></doc>`), &v)
	if err == nil || !strings.Contains(err.Error(), `element doc>page>n: "many" is not a valid number`) {
		t.Fatalf("error %v", err)
	}
	if err := DecodeJSON([]byte(`{"n":`), &v); err == nil || !strings.Contains(err.Error(), "malformed body: truncated JSON (5 bytes)") {
		t.Fatalf("error %v", err)
	}
}
