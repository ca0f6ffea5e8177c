// Package openapi checks a JSON document against a schema of an OpenAPI 3
// document, for the simulators' schema tests of products that have no
// public Go client (SRM, Cloud Director Availability, Horizon DaaS): the
// product's published OpenAPI document, or the part of it the simulator
// serves, is kept in the simulator's testdata with its source named, and the
// simulator's answers are checked against it.
//
// The subset understood is what those documents use: $ref to
// #/components/schemas, type (object, array, string, integer, number,
// boolean), properties, required, items, enum, allOf, nullable,
// additionalProperties. Validation is stricter than OpenAPI's default in
// one way, on purpose: an object property the schema does not declare is an
// error (unless additionalProperties allows it), so that a simulator cannot
// make up a field.
package openapi

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
)

// Doc is a loaded OpenAPI document.
type Doc struct {
	Paths      map[string]map[string]Operation `json:"paths"`
	Components struct {
		Schemas map[string]*Schema `json:"schemas"`
	} `json:"components"`
}

// Operation is the part of an operation the checks need.
type Operation struct {
	Responses map[string]struct {
		Content map[string]struct {
			Schema *Schema `json:"schema"`
		} `json:"content"`
	} `json:"responses"`
}

// Schema is the subset of a schema object understood here.
type Schema struct {
	Ref                  string             `json:"$ref"`
	Type                 string             `json:"type"`
	Properties           map[string]*Schema `json:"properties"`
	Required             []string           `json:"required"`
	Items                *Schema            `json:"items"`
	Enum                 []any              `json:"enum"`
	AllOf                []*Schema          `json:"allOf"`
	Nullable             bool               `json:"nullable"`
	AdditionalProperties json.RawMessage    `json:"additionalProperties"`
}

// Load reads an OpenAPI document (JSON).
func Load(path string) (*Doc, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d Doc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &d, nil
}

// Response is the schema of the answer of method on path (as the document
// writes it, "/pairings/{pairing_id}") with status, in a JSON media type
// (or */*, as documents generated from Spring services say).
func (d *Doc) Response(method, path, status string) (*Schema, error) {
	op, ok := d.Paths[path][strings.ToLower(method)]
	if !ok {
		return nil, fmt.Errorf("openapi: no %s %s", method, path)
	}
	r, ok := op.Responses[status]
	if !ok {
		return nil, fmt.Errorf("openapi: %s %s has no %s answer", method, path, status)
	}
	for _, wild := range []bool{false, true} {
		for ct, c := range r.Content {
			if c.Schema != nil && (strings.Contains(ct, "json") || wild && ct == "*/*") {
				return c.Schema, nil
			}
		}
	}
	return nil, fmt.Errorf("openapi: %s %s %s has no JSON schema", method, path, status)
}

// Validate checks the JSON document body against s and returns what does
// not conform, each as "path: problem" ($ is the document).
func (d *Doc) Validate(s *Schema, body []byte) []string {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return []string{"$: not JSON: " + err.Error()}
	}
	var errs []string
	d.check(s, v, "$", &errs)
	sort.Strings(errs)
	return errs
}

func (d *Doc) resolve(s *Schema) *Schema {
	for s != nil && s.Ref != "" {
		s = d.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")]
	}
	return s
}

// flatten merges allOf into one schema (properties and required of all).
func (d *Doc) flatten(s *Schema) *Schema {
	s = d.resolve(s)
	if s == nil || len(s.AllOf) == 0 {
		return s
	}
	out := *s
	out.AllOf = nil
	out.Properties = map[string]*Schema{}
	for k, p := range s.Properties {
		out.Properties[k] = p
	}
	for _, part := range s.AllOf {
		p := d.flatten(part)
		if p == nil {
			continue
		}
		if out.Type == "" {
			out.Type = p.Type
		}
		for k, ps := range p.Properties {
			out.Properties[k] = ps
		}
		out.Required = append(out.Required, p.Required...)
		if p.AdditionalProperties != nil {
			out.AdditionalProperties = p.AdditionalProperties
		}
	}
	return &out
}

func (d *Doc) check(s *Schema, v any, at string, errs *[]string) {
	s = d.flatten(s)
	if s == nil {
		*errs = append(*errs, at+": schema not found")
		return
	}
	if v == nil {
		if !s.Nullable && s.Type != "" {
			*errs = append(*errs, at+": null, schema says "+s.Type)
		}
		return
	}
	if len(s.Enum) > 0 && !slices.ContainsFunc(s.Enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		*errs = append(*errs, fmt.Sprintf("%s: %v is not one of %v", at, v, s.Enum))
	}
	typ := s.Type
	if typ == "" && s.Properties != nil {
		typ = "object"
	}
	switch typ {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			*errs = append(*errs, fmt.Sprintf("%s: %T, schema says object", at, v))
			return
		}
		for _, r := range s.Required {
			if _, ok := m[r]; !ok {
				*errs = append(*errs, at+"."+r+": required, missing")
			}
		}
		for k, pv := range m {
			ps, ok := s.Properties[k]
			if !ok {
				if add := d.additional(s); add != nil {
					d.check(add, pv, at+"."+k, errs)
				} else if string(s.AdditionalProperties) != "true" {
					*errs = append(*errs, at+"."+k+": not a property of the schema")
				}
				continue
			}
			d.check(ps, pv, at+"."+k, errs)
		}
	case "array":
		l, ok := v.([]any)
		if !ok {
			*errs = append(*errs, fmt.Sprintf("%s: %T, schema says array", at, v))
			return
		}
		for i, e := range l {
			if s.Items != nil {
				d.check(s.Items, e, fmt.Sprintf("%s[%d]", at, i), errs)
			}
		}
	case "string":
		if _, ok := v.(string); !ok {
			*errs = append(*errs, fmt.Sprintf("%s: %T, schema says string", at, v))
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != float64(int64(f)) {
			*errs = append(*errs, fmt.Sprintf("%s: %v, schema says integer", at, v))
		}
	case "number":
		if _, ok := v.(float64); !ok {
			*errs = append(*errs, fmt.Sprintf("%s: %T, schema says number", at, v))
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			*errs = append(*errs, fmt.Sprintf("%s: %T, schema says boolean", at, v))
		}
	}
}

// additional is the schema of undeclared properties when
// additionalProperties is a schema.
func (d *Doc) additional(s *Schema) *Schema {
	if len(s.AdditionalProperties) == 0 || s.AdditionalProperties[0] != '{' {
		return nil
	}
	var a Schema
	if json.Unmarshal(s.AdditionalProperties, &a) != nil {
		return nil
	}
	return &a
}
