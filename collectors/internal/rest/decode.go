package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// DecodeOptions decodes a product's options (Target.Options) into opts, a
// pointer to the product's Options struct. Empty or null raw leaves opts as
// it is (the product fills in defaults). Unknown keys, values of the wrong
// type and trailing data are errors that start "<kind> options: " and name
// the option; the known options are listed from the struct's json tags.
func DecodeOptions(kind string, raw json.RawMessage, opts any) error {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.DisallowUnknownFields()
	if err := dec.Decode(opts); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%s options: option %s: expected a %s, got a JSON %s", kind, te.Field, te.Type, te.Value)
		}
		if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return fmt.Errorf("%s options: unknown option %s (known: %s)", kind, msg, strings.Join(optionNames(opts), ", "))
		}
		return fmt.Errorf("%s options: %w", kind, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s options: trailing data after the JSON object", kind)
	}
	return nil
}

// optionNames lists the json names of the fields of the struct opts points
// to, in their order.
func optionNames(opts any) []string {
	t := reflect.TypeOf(opts)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		names = append(names, name)
	}
	return names
}

// DecodeJSON decodes body into v with errors that start "malformed body"
// and name the field: the decoding of Client.DoJSON, for a body already in
// memory.
func DecodeJSON(body []byte, v any) error {
	return decodeJSON(newMeter(bytes.NewReader(body), unlimited, nil), v)
}

// DecodeXML decodes body into v with errors that start "malformed body" and
// name the element: the decoding of Client.DoXML, for a body already in
// memory.
func DecodeXML(body []byte, v any) error {
	return decodeXML(newMeter(bytes.NewReader(body), unlimited, nil), v)
}

func kindOf(fn string) string {
	if fn == "ParseBool" {
		return "boolean"
	}
	return "number"
}

// Snippet is an error body as text for a message: trimmed, cut after 200
// bytes.
func Snippet(body []byte) string {
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
