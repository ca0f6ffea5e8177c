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

// Decoding answers as streams. encoding/json's Decoder.Decode reads a whole
// top-level value into its own buffer before it decodes it, so decoding a
// page with one Decode holds the page's bytes twice over (and, read with
// io.ReadAll first, three times, each grown by doubling). decodeJSON
// instead walks the top-level object token by token and decodes each
// element of a list field on its own: the decoder holds one element at a
// time, within Limits.Object, and what is decoded is charged to
// Limits.Budget. encoding/xml already decodes token by token; decodeXML
// feeds it through a token reader that puts each token within
// Limits.Object and charges the budget.

// bodyError is an error that already says "malformed body".
type bodyError struct{ msg string }

func (e *bodyError) Error() string { return e.msg }

// readError is the transport failing under the decoder (not the product's
// answer being malformed).
type readError struct{ err error }

func (e *readError) Error() string { return "reading the answer: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// decodeJSON decodes the JSON answer m reads into v. When v points to a
// struct, its list fields are decoded element by element; any other v is
// decoded whole, as one object. Errors start "malformed body" and name the
// field, or are a *LimitError or a *readError.
func decodeJSON(m *meter, v any) error {
	dec := json.NewDecoder(m)
	err := streamJSON(dec, m, v)
	if err == nil {
		return nil
	}
	var be *bodyError
	var re *readError
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.Is(err, ErrTooLarge), errors.As(err, &be), errors.As(err, &re):
		return err
	case errors.As(err, &te):
		return fmt.Errorf("malformed body: field %s: expected a %s, got a JSON %s", te.Field, te.Type, te.Value)
	case errors.As(err, &se):
		return fmt.Errorf("malformed body: invalid JSON at byte %d: %v", se.Offset, se)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return fmt.Errorf("malformed body: truncated JSON (%d bytes)", m.n)
	}
	return fmt.Errorf("malformed body: %w", err)
}

// jsonField is a struct field as encoding/json names it.
type jsonField struct {
	index int
	name  string
	list  bool // a slice decoded element by element
}

// jsonFields lists the fields of struct type t as encoding/json sees them,
// false if t has fields this decoder does not stream (embedded structs,
// ",string" options): v is then decoded whole.
func jsonFields(t reflect.Type) ([]jsonField, bool) {
	var fs []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			return nil, false
		}
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" && opts == "" {
			continue
		}
		if strings.Contains(","+opts+",", ",string,") {
			return nil, false
		}
		if name == "" {
			name = f.Name
		}
		list := f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() != reflect.Uint8 &&
			!f.Type.Implements(reflect.TypeFor[json.Unmarshaler]()) &&
			!reflect.PointerTo(f.Type).Implements(reflect.TypeFor[json.Unmarshaler]())
		fs = append(fs, jsonField{index: i, name: name, list: list})
	}
	return fs, true
}

// lookup finds the field of key as encoding/json does: the exact name
// first, else one equal under case folding.
func lookup(fs []jsonField, key string) *jsonField {
	for i := range fs {
		if fs[i].name == key {
			return &fs[i]
		}
	}
	for i := range fs {
		if strings.EqualFold(fs[i].name, key) {
			return &fs[i]
		}
	}
	return nil
}

func streamJSON(dec *json.Decoder, m *meter, v any) error {
	rv := reflect.ValueOf(v)
	var fs []jsonField
	ok := rv.Kind() == reflect.Pointer && !rv.IsNil() && rv.Elem().Kind() == reflect.Struct
	if ok {
		fs, ok = jsonFields(rv.Elem().Type())
	}
	if !ok {
		m.object()
		before := dec.InputOffset()
		if err := dec.Decode(v); err != nil {
			return err
		}
		return m.charge(dec.InputOffset() - before)
	}
	st := rv.Elem()
	m.object()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return nil // null leaves v as it is, as json.Unmarshal does
	}
	if tok != json.Delim('{') {
		return &json.UnmarshalTypeError{Value: jsonKind(tok), Type: st.Type()}
	}
	for dec.More() {
		m.object()
		kt, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := kt.(string)
		f := lookup(fs, key)
		if f == nil {
			if err := skipJSON(dec, m); err != nil {
				return err
			}
			continue
		}
		fv := st.Field(f.index)
		if !f.list {
			m.object()
			before := dec.InputOffset()
			if err := dec.Decode(fv.Addr().Interface()); err != nil {
				return inField(err, f.name)
			}
			if err := m.charge(dec.InputOffset() - before); err != nil {
				return err
			}
			continue
		}
		if err := streamList(dec, m, fv, f.name); err != nil {
			return err
		}
	}
	m.object()
	_, err = dec.Token() // '}'
	return err
}

// streamList decodes the JSON array of list field fv (named name, as its
// type errors say) element by
// element, each one object charged with its bytes and its Go size.
func streamList(dec *json.Decoder, m *meter, fv reflect.Value, name string) error {
	m.object()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		fv.SetZero()
		return nil
	}
	if tok != json.Delim('[') {
		return &json.UnmarshalTypeError{Value: jsonKind(tok), Type: fv.Type(), Field: name}
	}
	et := fv.Type().Elem()
	fv.Set(reflect.MakeSlice(fv.Type(), 0, 0))
	for dec.More() {
		m.object()
		before := dec.InputOffset()
		ep := reflect.New(et)
		if err := dec.Decode(ep.Interface()); err != nil {
			return inField(err, name)
		}
		if err := m.charge(dec.InputOffset() - before + int64(et.Size())); err != nil {
			return err
		}
		fv.Set(reflect.Append(fv, ep.Elem()))
	}
	m.object()
	_, err = dec.Token() // ']'
	return err
}

// skipJSON reads past the next value token by token, keeping nothing.
func skipJSON(dec *json.Decoder, m *meter) error {
	depth := 0
	for {
		m.object()
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// inField puts name in front of the field path of a type error.
func inField(err error, name string) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err
	}
	e := *te
	if e.Field == "" {
		e.Field = name
	} else {
		e.Field = name + "." + e.Field
	}
	return &e
}

// jsonKind names the JSON kind of a token as encoding/json's messages do.
func jsonKind(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		if tok == json.Delim('[') {
			return "array"
		}
		return "object"
	case string:
		return "string"
	case float64, json.Number:
		return "number"
	case bool:
		return "bool"
	}
	return "null"
}

// xmlTokens is the token reader decodeXML decodes from: every token of the
// underlying decoder within Limits.Object, charged to the budget, with the
// element path kept for error messages.
type xmlTokens struct {
	d     *xml.Decoder
	m     *meter
	stack []string
	// The last short text and the path of its element (kept as the
	// stack was, joined only for a message): a number or boolean that
	// does not parse is named by it.
	text      string
	textStack []string
}

func (x *xmlTokens) Token() (xml.Token, error) {
	x.m.object()
	t, err := x.d.RawToken()
	if t == nil {
		return nil, err
	}
	var n int64
	switch t := t.(type) {
	case xml.StartElement:
		x.stack = append(x.stack, t.Name.Local)
		n = 16
		for _, a := range t.Attr {
			n += int64(len(a.Value))
		}
	case xml.EndElement:
		if len(x.stack) > 0 {
			x.stack = x.stack[:len(x.stack)-1]
		}
	case xml.CharData:
		n = int64(len(t))
		if s := bytes.TrimSpace(t); len(s) > 0 && len(s) <= 64 {
			x.text, x.textStack = string(s), append(x.textStack[:0], x.stack...)
		}
	}
	if err := x.m.charge(n); err != nil {
		return nil, err
	}
	return t, err
}

// decodeXML decodes the XML answer m reads into v, token by token. Errors
// start "malformed body" and name the element, or are a *LimitError or a
// *readError.
func decodeXML(m *meter, v any) error {
	x := &xmlTokens{d: xml.NewDecoder(m), m: m}
	err := xml.NewTokenDecoder(x).Decode(v)
	if err == nil {
		return nil
	}
	var re *readError
	var se *xml.SyntaxError
	var ue *xml.UnmarshalError
	var ne *strconv.NumError
	switch {
	case errors.Is(err, ErrTooLarge), errors.As(err, &re):
		return err
	case errors.As(err, &se):
		// The line of the underlying decoder: the token decoder counts none.
		line, _ := x.d.InputPos()
		return fmt.Errorf("malformed body: invalid XML at line %d: %s", line, se.Msg)
	case errors.As(err, &ne):
		if ne.Num == x.text && len(x.textStack) > 0 {
			return fmt.Errorf("malformed body: element %s: %q is not a valid %s", strings.Join(x.textStack, ">"), ne.Num, kindOf(ne.Func))
		}
		return fmt.Errorf("malformed body: value %q is not a valid %s", ne.Num, kindOf(ne.Func))
	case errors.As(err, &ue):
		return fmt.Errorf("malformed body: %s", string(*ue))
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("malformed body: truncated XML (%d bytes)", m.n)
	}
	return fmt.Errorf("malformed body: %w", err)
}
