// Package rest is the plumbing the REST product collectors (collectors/vcd,
// collectors/nsxt, collectors/nsxv and the next ones: SRM, Horizon, VCDA,
// Aria ...) share, so that each product package holds only what is its own:
// the API's shapes, its login flow, its paging style and its edition rules.
//
// Options: DecodeOptions decodes a product's Target.Options strictly
// (unknown keys, wrong types and trailing data are errors naming the key).
// Answers: DecodeJSON and DecodeXML decode a body with errors that say
// "malformed body" and name the field or element.
package rest
