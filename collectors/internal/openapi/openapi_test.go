package openapi

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestValidate: what the checks catch, on a small document.
func TestValidate(t *testing.T) {
	var d Doc
	if err := json.Unmarshal([]byte(`{"components":{"schemas":{
		"List":{"type":"object","properties":{"list":{"type":"array","items":{"$ref":"#/components/schemas/Item"}}}},
		"Base":{"type":"object","required":["id"],"properties":{"id":{"type":"string"}}},
		"Item":{"allOf":[{"$ref":"#/components/schemas/Base"},{"type":"object","properties":{
			"n":{"type":"integer"},"kind":{"type":"string","enum":["A","B"]},"note":{"type":"string","nullable":true},
			"tags":{"type":"object","additionalProperties":{"type":"string"}}}}]}}}}`), &d); err != nil {
		t.Fatal(err)
	}
	list := &Schema{Ref: "#/components/schemas/List"}
	if errs := d.Validate(list, []byte(`{"list":[{"id":"a","n":2,"kind":"A","note":null,"tags":{"x":"y"}}]}`)); len(errs) != 0 {
		t.Fatalf("valid document: %v", errs)
	}
	errs := d.Validate(list, []byte(`{"list":[{"n":2.5,"kind":"C","colour":"red","tags":{"x":1}}],"extra":true}`))
	want := []string{"$.extra: not a property", "$.list[0].colour: not a property", "$.list[0].id: required", "$.list[0].kind: C is not one of",
		"$.list[0].n: 2.5, schema says integer", "$.list[0].tags.x: float64, schema says string"}
	if len(errs) != len(want) {
		t.Fatalf("errors: %q", errs)
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i], w) {
			t.Errorf("error %d: %q, want %q...", i, errs[i], w)
		}
	}
}
