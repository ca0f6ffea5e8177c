package rest

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
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
// and name the field.
func DecodeJSON(body []byte, v any) error {
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return fmt.Errorf("malformed body: field %s: expected a %s, got a JSON %s", te.Field, te.Type, te.Value)
		case errors.As(err, &se):
			return fmt.Errorf("malformed body: invalid JSON at byte %d: %v", se.Offset, se)
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			return fmt.Errorf("malformed body: truncated JSON (%d bytes)", len(body))
		}
		return fmt.Errorf("malformed body: %w", err)
	}
	return nil
}

// DecodeXML decodes body into v with errors that start "malformed body" and
// name the element.
func DecodeXML(body []byte, v any) error {
	dec := xml.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var se *xml.SyntaxError
		var ue *xml.UnmarshalError
		var ne *strconv.NumError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("malformed body: invalid XML at line %d: %s", se.Line, se.Msg)
		case errors.As(err, &ne):
			return fmt.Errorf("malformed body: %s", describeNumError(body, ne))
		case errors.As(err, &ue):
			return fmt.Errorf("malformed body: %s", string(*ue))
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return fmt.Errorf("malformed body: truncated XML (%d bytes)", len(body))
		}
		return fmt.Errorf("malformed body: %w", err)
	}
	return nil
}

// describeNumError names the element whose text is not a number or boolean
// (encoding/xml does not say which one).
func describeNumError(body []byte, ne *strconv.NumError) string {
	dec := xml.NewDecoder(bytes.NewReader(body))
	var stack []string
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			stack = append(stack, t.Name.Local)
		case xml.EndElement:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			if strings.TrimSpace(string(t)) == ne.Num && len(stack) > 0 {
				return fmt.Sprintf("element %s: %q is not a valid %s", strings.Join(stack, ">"), ne.Num, kindOf(ne.Func))
			}
		}
	}
	return fmt.Sprintf("value %q is not a valid %s", ne.Num, kindOf(ne.Func))
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
