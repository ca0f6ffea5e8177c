package rest

import (
	"errors"
	"fmt"
	"io"
)

// Limits bound the memory one product's answers can take. Answers are
// decoded as they arrive (DoJSON, DoXML), never read whole first, so what
// an answer costs is the objects decoded from it plus one object's bytes in
// the decoder: a product that answers without end, or with more than it
// could send for one page, is stopped at a limit with a *LimitError. A
// product's calls are serialised, so Budget is the product's memory budget
// for answers.
type Limits struct {
	// Response bounds the bytes of one answer: more than the product could
	// send for one page (or one document, for unpaged calls).
	Response int64
	// Object bounds the bytes of one object: one element of a JSON list
	// decoded as a stream, any other JSON value at the top of an answer (a
	// key, a number, a nested object), or one XML token (a start tag with
	// its attributes, a text). An answer read whole (Do) is one object.
	Object int64
	// Budget bounds the memory one answer is decoded into, estimated as it
	// is decoded: for a JSON list element its bytes plus the Go size of the
	// element, for other JSON values their bytes, for XML the text and
	// attribute values plus 16 bytes per element.
	Budget int64
}

// DefaultLimits are the limits of a client whose Limits are not set (a
// field left 0 takes its default).
var DefaultLimits = Limits{Response: 32 << 20, Object: 1 << 20, Budget: 32 << 20}

// orDefault fills in the fields left 0.
func (l Limits) orDefault() Limits {
	if l.Response <= 0 {
		l.Response = DefaultLimits.Response
	}
	if l.Object <= 0 {
		l.Object = DefaultLimits.Object
	}
	if l.Budget <= 0 {
		l.Budget = DefaultLimits.Budget
	}
	return l
}

// unlimited are the limits of decoding a body already in memory
// (DecodeJSON, DecodeXML).
var unlimited = Limits{Response: 1 << 62, Object: 1 << 62, Budget: 1 << 62}

// ErrTooLarge is wrapped by every *LimitError.
var ErrTooLarge = errors.New("answer too large")

// Which limit a *LimitError is about.
const (
	LimitResponse = "answer"
	LimitObject   = "object"
	LimitBudget   = "budget"
)

// LimitError is an answer stopped at one of the product's Limits. It names
// the product kind, the call and the limit; the collector's error adds the
// host.
type LimitError struct {
	Kind  string // product kind
	Call  string // "GET /path?query"
	Which string // LimitResponse, LimitObject or LimitBudget
	Limit int64  // bytes
}

func (e *LimitError) Error() string {
	switch e.Which {
	case LimitObject:
		return fmt.Sprintf("%s: one object of the answer is larger than %s, the limit of one %s object: stopped reading", e.Call, size(e.Limit), e.Kind)
	case LimitBudget:
		return fmt.Sprintf("%s: the answer decodes to more than %s, the limit of the %s memory budget for one answer: stopped reading", e.Call, size(e.Limit), e.Kind)
	}
	return fmt.Sprintf("%s: the answer is larger than %s, the limit of one %s answer (more than it could send for one page): stopped reading", e.Call, size(e.Limit), e.Kind)
}

func (e *LimitError) Unwrap() error { return ErrTooLarge }

// size reads n bytes as MiB or KiB when it is a whole number of them.
func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// meter reads an answer within the limits: at most Response bytes in all
// and, from each call of object, at most Object bytes more; a read past
// either is a *LimitError. It also keeps the budget's account.
type meter struct {
	r      io.Reader
	lim    Limits
	newErr func(which string, limit int64) error
	n      int64 // bytes read
	objEnd int64 // n at which the current object's window closes
	spent  int64 // budget charged
}

func newMeter(r io.Reader, lim Limits, newErr func(which string, limit int64) error) *meter {
	if newErr == nil {
		newErr = func(which string, limit int64) error {
			return &LimitError{Kind: "product", Call: "reading", Which: which, Limit: limit}
		}
	}
	return &meter{r: r, lim: lim, newErr: newErr, objEnd: lim.Object}
}

// object opens the window of a new object: the bytes the decoder holds
// already are free, it may read Object bytes more.
func (m *meter) object() {
	m.objEnd = m.n + m.lim.Object
}

func (m *meter) Read(p []byte) (int, error) {
	end := min(m.lim.Response, m.objEnd)
	if m.n >= end {
		if len(p) == 0 {
			return 0, nil
		}
		if m.n >= m.lim.Response {
			return 0, m.newErr(LimitResponse, m.lim.Response)
		}
		return 0, m.newErr(LimitObject, m.lim.Object)
	}
	if int64(len(p)) > end-m.n {
		p = p[:end-m.n]
	}
	k, err := m.r.Read(p)
	m.n += int64(k)
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return k, err
}

// charge adds n bytes to the budget's account.
func (m *meter) charge(n int64) error {
	m.spent += n
	if m.spent > m.lim.Budget {
		return m.newErr(LimitBudget, m.lim.Budget)
	}
	return nil
}
