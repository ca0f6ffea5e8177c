package receiver

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/internal/web/service"
	"github.com/usagemeter/usagemeter/internal/web/ui"
)

// The console's API tokens page: the umt_ tokens of internal/web/auth
// (stored hashed in the api_tokens table, revocable), with which a script
// reads the fleet API as the account that created the token. Creating and
// revoking one is audited by auth.Manager (token.create, token.revoke).

// apiTokensData is the API tokens page.
type apiTokensData struct {
	Tokens []store.APIToken
	New    *auth.NewToken // just created: shown on this answer only
}

func (c *console) apiTokens(w http.ResponseWriter, req *http.Request) {
	c.showAPITokens(w, req, nil, nil)
}

func (c *console) showAPITokens(w http.ResponseWriter, req *http.Request, nt *auth.NewToken, failed error) {
	ts, err := c.am.Tokens(req.Context())
	if err != nil {
		c.ui.PageError(w, req, err)
		return
	}
	c.ui.Render(w, req, "apitokens", "API tokens", apiTokensData{Tokens: ts, New: nt}, failed)
}

func (c *console) createAPIToken(w http.ResponseWriter, req *http.Request) {
	err := ui.Form(w, req)
	var nt auth.NewToken
	if err == nil {
		u, _ := auth.UserFrom(req.Context())
		nt, err = c.am.CreateToken(req.Context(), u, req.PostForm.Get("name"))
	}
	if err != nil {
		c.showAPITokens(w, req, nil, err)
		return
	}
	// Shown on this response only (no redirect: the token is stored
	// nowhere in clear, not even in a flash cookie).
	c.showAPITokens(w, req, &nt, nil)
}

func (c *console) revokeAPIToken(w http.ResponseWriter, req *http.Request) {
	id, err := strconv.ParseInt(req.PathValue("id"), 10, 64)
	if err != nil {
		err = &service.Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("%q is not an API token's number", req.PathValue("id"))}
	} else {
		u, _ := auth.UserFrom(req.Context())
		err = c.am.RevokeToken(req.Context(), u, id)
	}
	if err != nil {
		c.showAPITokens(w, req, nil, err)
		return
	}
	ui.Done(w, req, "/api-tokens", fmt.Sprintf("API token %d revoked: the fleet API refuses it from now on.", id))
}
