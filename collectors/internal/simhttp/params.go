package simhttp

import (
	"net/url"
	"strconv"
)

// IntParam is an integer query parameter for IntParams (see Int).
type IntParam struct {
	name string
	min  int
	v    *int
}

// Int is the query parameter name, whose value must be a whole number of at
// least min, read into *v (which holds its default).
func Int(name string, min int, v *int) IntParam { return IntParam{name: name, min: min, v: v} }

// IntParams reads the parameters ps of q, in order, and returns the name of
// the first that is given but not a whole number of at least its min ("":
// all are right). A parameter not given keeps its default; one after a
// wrong one is not read.
func IntParams(q url.Values, ps ...IntParam) (bad string) {
	for _, p := range ps {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < p.min {
			return p.name
		}
		*p.v = n
	}
	return ""
}
