package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/internal/web/service"
)

// api serves /api/v1.
type api struct {
	svc  *service.Service
	auth *auth.Manager
}

// Prefix is the API's path prefix.
const Prefix = "/api/v1"

// routes registers every API route and returns their patterns ("GET
// /products/{id}", without the prefix). The OpenAPI document lists the
// same (a test checks both ways).
func (a *api) routes(mux *http.ServeMux) []string {
	var patterns []string
	open := func(pattern string, h http.HandlerFunc) {
		mux.Handle(withPrefix(pattern), h)
		patterns = append(patterns, pattern)
	}
	authed := func(pattern string, h http.HandlerFunc) {
		mux.Handle(withPrefix(pattern), a.auth.RequireAPI(h))
		patterns = append(patterns, pattern)
	}

	open("GET /openapi.json", serveOpenAPI)
	open("POST /login", a.login)
	authed("POST /logout", a.logout)
	authed("GET /me", a.me)
	authed("POST /password", a.changePassword)

	authed("GET /appliance", get(a, a.svc.Appliance))
	authed("POST /registration", a.register)
	authed("GET /kinds", a.kinds)
	authed("GET /products", get(a, a.svc.Products))
	authed("POST /products", a.addProduct)
	authed("POST /certificate", a.previewCertificate)
	authed("GET /products/{id}", getByID(a, a.svc.Product))
	authed("PATCH /products/{id}", a.updateProduct)
	authed("DELETE /products/{id}", a.removeProduct)
	authed("POST /products/{id}/test", a.testProduct)
	authed("POST /products/{id}/deactivate", a.setActive(false))
	authed("POST /products/{id}/reactivate", a.setActive(true))

	authed("GET /journal", a.journal)
	authed("GET /alerts", a.alerts)

	authed("GET /reports", get(a, a.svc.Reports))
	authed("POST /reports", a.generateReport)
	authed("GET /reports/{id}", getByID(a, a.svc.Report))
	authed("GET /reports/{id}/bundle", a.download(false))
	authed("GET /reports/{id}/plain", a.download(true))
	authed("POST /reports/{id}/resend", a.resendReport)
	authed("GET /reports/{id}/verify", getByID(a, a.svc.VerifyReport))

	authed("GET /customer-rules", get(a, a.svc.CustomerRules))
	authed("POST /customer-rules", a.addCustomerRule)
	authed("DELETE /customer-rules/{id}", a.removeCustomerRule)

	authed("GET /licenses", get(a, a.svc.LicenseCategories))
	authed("PUT /licenses/{key}", a.setLicense)

	authed("GET /month-to-date", get(a, a.svc.MonthToDate))
	authed("GET /month-to-date.csv", a.monthToDateCSV)
	authed("GET /settings", get(a, a.svc.Settings))
	authed("GET /audit", a.audit)

	authed("GET /tokens", a.tokens)
	authed("POST /tokens", a.createToken)
	authed("DELETE /tokens/{id}", a.revokeToken)

	// Anything else under the prefix is a JSON 404, not the console's page.
	mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		auth.WriteError(w, http.StatusNotFound, fmt.Sprintf("no such API route: %s %s (see %s/openapi.json)", r.Method, r.URL.Path, Prefix))
	})
	return patterns
}

func withPrefix(pattern string) string {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		return Prefix + pattern
	}
	return method + " " + Prefix + path
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // JSON, served as such with nosniff: "<secret>" reads as it is
	_ = enc.Encode(v)
}

// writeErr writes err as JSON with its status; a certificate to accept
// goes with it. A 500's cause is logged and named generically.
func (a *api) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	status := service.StatusOf(err)
	body := map[string]any{"error": err.Error()}
	var se *service.Error
	if errors.As(err, &se) && se.Certificate != nil {
		body["certificate"] = se.Certificate
	}
	if status >= 500 && status != http.StatusBadGateway && status != http.StatusServiceUnavailable {
		a.svc.App().Log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, body)
}

// decode reads the JSON body into v: unknown fields, trailing data and an
// oversized body are errors naming the cause.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		auth.WriteError(w, http.StatusUnsupportedMediaType, "request body: send JSON with Content-Type: application/json (got "+ct+")")
		return false
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err == nil {
		if _, rerr := io.Copy(io.Discard, r.Body); rerr != nil {
			err = rerr
		}
	}
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return true
	case errors.As(err, &mbe):
		auth.WriteError(w, http.StatusRequestEntityTooLarge, "request body too large: the limit is "+sizeText(mbe.Limit))
	case errors.Is(err, io.EOF):
		auth.WriteError(w, http.StatusBadRequest, "request body: a JSON object is required")
	default:
		auth.WriteError(w, http.StatusBadRequest, "request body: "+err.Error())
	}
	return false
}

func sizeText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	s := r.PathValue("id")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		auth.WriteError(w, http.StatusBadRequest, fmt.Sprintf("id %q: not a positive number", s))
		return 0, false
	}
	return id, true
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (a *api) login(w http.ResponseWriter, r *http.Request) {
	var in loginRequest
	if !decode(w, r, &in) {
		return
	}
	if in.Username == "" || in.Password == "" {
		auth.WriteError(w, http.StatusBadRequest, "username and password are required")
		return
	}
	err := a.auth.Login(w, r, in.Username, in.Password)
	var le *auth.LockedError
	var te *auth.ThrottledError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]string{"username": in.Username})
	case errors.Is(err, auth.ErrBadCredentials):
		auth.WriteError(w, http.StatusUnauthorized, err.Error())
	case errors.As(err, &le):
		auth.WriteError(w, http.StatusForbidden, err.Error())
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(int(te.RetryAfter.Seconds())+1))
		auth.WriteError(w, http.StatusTooManyRequests, err.Error())
	default:
		a.writeErr(w, r, err)
	}
}

func (a *api) logout(w http.ResponseWriter, r *http.Request) {
	a.auth.Logout(w, r)
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) me(w http.ResponseWriter, r *http.Request) {
	u, _ := auth.UserFrom(r.Context())
	writeJSON(w, http.StatusOK, u)
}

type passwordRequest struct {
	Current string `json:"current"`
	New     string `json:"new"`
}

func (a *api) changePassword(w http.ResponseWriter, r *http.Request) {
	var in passwordRequest
	if !decode(w, r, &in) {
		return
	}
	u, _ := auth.UserFrom(r.Context())
	if err := a.auth.ChangePassword(r.Context(), u, in.Current, in.New); err != nil {
		a.writeErr(w, r, err)
		return
	}
	// Every session ended with the change: this one too.
	a.auth.Logout(w, r)
	w.WriteHeader(http.StatusNoContent)
}

// reply writes v, or err.
func reply[T any](a *api, w http.ResponseWriter, r *http.Request, status int, v T, err error) {
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	writeJSON(w, status, v)
}

// get serves what fn reads: a GET with nothing to parse.
func get[T any](a *api, fn func(context.Context) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := fn(r.Context())
		reply(a, w, r, http.StatusOK, v, err)
	}
}

// getByID serves what fn reads for the path's {id}.
func getByID[T any](a *api, fn func(context.Context, int64) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r)
		if !ok {
			return
		}
		v, err := fn(r.Context(), id)
		reply(a, w, r, http.StatusOK, v, err)
	}
}

type registrationRequest struct {
	ContractID string `json:"contract_id"`
	Program    string `json:"program"`
}

func (a *api) register(w http.ResponseWriter, r *http.Request) {
	var in registrationRequest
	if !decode(w, r, &in) {
		return
	}
	if err := a.svc.Register(r.Context(), auth.ActorFrom(r), in.ContractID, in.Program); err != nil {
		a.writeErr(w, r, err)
		return
	}
	v, err := a.svc.Appliance(r.Context())
	reply(a, w, r, http.StatusOK, v, err)
}

func (a *api) kinds(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.svc.Kinds())
}

type certificateRequest struct {
	Kind     string `json:"kind"`
	Endpoint string `json:"endpoint"`
}

func (a *api) previewCertificate(w http.ResponseWriter, r *http.Request) {
	var in certificateRequest
	if !decode(w, r, &in) {
		return
	}
	v, err := a.svc.PreviewCertificate(r.Context(), in.Kind, in.Endpoint)
	reply(a, w, r, http.StatusOK, v, err)
}

func (a *api) addProduct(w http.ResponseWriter, r *http.Request) {
	var in service.ProductInput
	if !decode(w, r, &in) {
		return
	}
	v, err := a.svc.AddProduct(r.Context(), auth.ActorFrom(r), in)
	reply(a, w, r, http.StatusCreated, v, err)
}

func (a *api) updateProduct(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	var in service.ProductUpdate
	if !decode(w, r, &in) {
		return
	}
	v, err := a.svc.UpdateProduct(r.Context(), auth.ActorFrom(r), id, in)
	reply(a, w, r, http.StatusOK, v, err)
}

func (a *api) removeProduct(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	v, err := a.svc.RemoveProduct(r.Context(), auth.ActorFrom(r), id)
	reply(a, w, r, http.StatusOK, v, err)
}

func (a *api) testProduct(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	v, err := a.svc.TestProduct(r.Context(), auth.ActorFrom(r), id)
	reply(a, w, r, http.StatusOK, v, err)
}

func (a *api) setActive(active bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r)
		if !ok {
			return
		}
		v, err := a.svc.SetActive(r.Context(), auth.ActorFrom(r), id, active)
		reply(a, w, r, http.StatusOK, v, err)
	}
}

// queryInt reads an optional integer query parameter.
func queryInt(w http.ResponseWriter, r *http.Request, name string, into *int64) bool {
	s := r.URL.Query().Get(name)
	if s == "" {
		return true
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		auth.WriteError(w, http.StatusBadRequest, fmt.Sprintf("%s %q: not a number (0 or more)", name, s))
		return false
	}
	*into = v
	return true
}

func (a *api) journal(w http.ResponseWriter, r *http.Request) {
	q := service.JournalQuery{State: r.URL.Query().Get("state")}
	var limit int64
	if !queryInt(w, r, "product", &q.ProductID) || !queryInt(w, r, "limit", &limit) {
		return
	}
	q.Limit = int(limit)
	var err error
	if q.Before, err = service.ParseJournalCursor(r.URL.Query().Get("before")); err == nil {
		q.After, err = service.ParseJournalCursor(r.URL.Query().Get("after"))
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	v, err := a.svc.Journal(r.Context(), q)
	reply(a, w, r, http.StatusOK, v, err)
}

func (a *api) alerts(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	if state != "" && state != "open" && state != "all" {
		auth.WriteError(w, http.StatusBadRequest, fmt.Sprintf("state %q: want open (default) or all", state))
		return
	}
	v, err := a.svc.Alerts(r.Context(), state != "all")
	reply(a, w, r, http.StatusOK, v, err)
}

type generateRequest struct {
	Month string `json:"month"`
}

func (a *api) generateReport(w http.ResponseWriter, r *http.Request) {
	var in generateRequest
	if !decode(w, r, &in) {
		return
	}
	v, err := a.svc.GenerateReport(r.Context(), auth.ActorFrom(r), in.Month)
	reply(a, w, r, http.StatusOK, v, err)
}

func (a *api) resendReport(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	v, err := a.svc.ResendReport(r.Context(), auth.ActorFrom(r), id)
	reply(a, w, r, http.StatusOK, v, err)
}

func (a *api) download(plain bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r)
		if !ok {
			return
		}
		open := a.svc.OpenReportBundle
		if plain {
			open = a.svc.OpenReportPlain
		}
		d, err := open(r.Context(), auth.ActorFrom(r), id)
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
		defer d.File.Close()
		ServeDownload(w, r, d)
	}
}

// ServeDownload sends a report file as an attachment (the console uses it
// too).
func ServeDownload(w http.ResponseWriter, r *http.Request, d *service.Download) {
	w.Header().Set("Content-Type", d.ContentType)
	w.Header().Set("Content-Disposition", `attachment; filename="`+d.Name+`"`)
	http.ServeContent(w, r, d.Name, d.ModTime, d.File)
}

func (a *api) addCustomerRule(w http.ResponseWriter, r *http.Request) {
	var in service.CustomerRuleInput
	if !decode(w, r, &in) {
		return
	}
	v, err := a.svc.AddCustomerRule(r.Context(), auth.ActorFrom(r), in)
	reply(a, w, r, http.StatusCreated, v, err)
}

func (a *api) removeCustomerRule(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if err := a.svc.RemoveCustomerRule(r.Context(), auth.ActorFrom(r), id); err != nil {
		a.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type licenseRequest struct {
	Category string     `json:"category"`
	From     *time.Time `json:"from"`
}

func (a *api) setLicense(w http.ResponseWriter, r *http.Request) {
	var in licenseRequest
	if !decode(w, r, &in) {
		return
	}
	key := r.PathValue("key")
	if err := a.svc.SetLicenseCategory(r.Context(), auth.ActorFrom(r), key, in.Category, in.From); err != nil {
		a.writeErr(w, r, err)
		return
	}
	ls, err := a.svc.LicenseCategories(r.Context())
	for _, l := range ls {
		if l.Key == key {
			reply(a, w, r, http.StatusOK, l, err)
			return
		}
	}
	reply(a, w, r, http.StatusOK, service.License{Key: key, Category: in.Category}, err)
}

func (a *api) monthToDateCSV(w http.ResponseWriter, r *http.Request) {
	v, err := a.svc.MonthToDate(r.Context())
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="usage-`+v.Month+`-to-date.csv"`)
	_ = service.WriteMonthToDateCSV(w, v)
}

func (a *api) audit(w http.ResponseWriter, r *http.Request) {
	var f store.AuditFilter
	var limit int64
	if !queryInt(w, r, "before", &f.Before) || !queryInt(w, r, "limit", &limit) {
		return
	}
	f.Limit, f.Actor, f.Action = int(limit), r.URL.Query().Get("actor"), r.URL.Query().Get("action")
	v, err := a.svc.Audit(r.Context(), f)
	reply(a, w, r, http.StatusOK, v, err)
}

func (a *api) tokens(w http.ResponseWriter, r *http.Request) {
	v, err := a.auth.Tokens(r.Context())
	reply(a, w, r, http.StatusOK, v, err)
}

type tokenRequest struct {
	Name string `json:"name"`
}

func (a *api) createToken(w http.ResponseWriter, r *http.Request) {
	var in tokenRequest
	if !decode(w, r, &in) {
		return
	}
	u, _ := auth.UserFrom(r.Context())
	v, err := a.auth.CreateToken(r.Context(), u, in.Name)
	reply(a, w, r, http.StatusCreated, v, err)
}

func (a *api) revokeToken(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	u, _ := auth.UserFrom(r.Context())
	if err := a.auth.RevokeToken(r.Context(), u, id); err != nil {
		a.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
