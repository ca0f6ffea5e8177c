// Package rest is the plumbing the REST product collectors (collectors/vcd,
// collectors/nsxt, collectors/nsxv and the next ones: SRM, Horizon, VCDA,
// Aria ...) share, so that each product package holds only what is its own:
// the API's shapes, its login flow, its paging style and its edition rules.
//
// Calls: NewClient validates a Target (an https endpoint, see ParseEndpoint;
// a user name) and fills in its defaults; Client.Do sends one call under its
// own deadline (Target.Timeout; an expired one is a context.DeadlineExceeded
// that says so, see Deadline and Call) over TLS verified by the system roots
// or the accepted thumbprint (internal/tlsutil: a refused certificate is a
// *tlsutil.CertError) and returns a non-2xx answer as an *HTTPError
// carrying the product's message. An error
// reading one page of a list is a *PageError naming the list and the page.
// A product with an API rate limit sets Client.Throttle (or ThrottleLogged,
// which logs each wait): 429 and 503 answers are then waited out
// (Retry-After) a few times per call.
//
// Sessions: WithSession logs in once when no session is held and once more
// when a kept session is refused (expired between or within hours); a
// refused login, or a session refused right after logging in, is an error,
// never a retry loop. Client.EnsureSession logs in first where a refused
// login must read as one; Client.Logout ends a session, one already gone
// being no error.
//
// Memory: answers are decoded as they arrive, never read whole first.
// Client.DoJSON walks the top-level object and decodes each element of a
// list on its own; Client.DoXML decodes token by token. Client.Limits (set
// by each product to what it could send for one page) bound the bytes of
// one answer, of one object in it, and the memory it is decoded into (the
// product's budget: its calls are serialised); an answer past one is a
// *LimitError (errors.Is ErrTooLarge) naming the product kind, the call and
// the limit. Do reads small answers (logins) whole, within one object.
//
// Options: DecodeOptions decodes a product's Target.Options strictly
// (unknown keys, wrong types and trailing data are errors naming the key).
// Answers: DecodeJSON and DecodeXML decode a body already in memory as
// DoJSON and DoXML do, with errors that say "malformed body" and name the
// field or element.
package rest
