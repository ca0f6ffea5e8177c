package cli

import (
	"context"
	"fmt"
	"os/user"
	"strings"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/store"
)

// cliActor is who the audit log says made a change on the command line:
// "cli:" and the OS user.
func cliActor() string {
	if u, err := user.Current(); err == nil {
		return "cli:" + u.Username
	}
	return "cli"
}

// audited records a change made on the command line in the audit log
// (the web console shows it beside the changes made there), whatever its
// outcome, and returns err. An entry that cannot be written is reported
// on stderr; the change stands.
func audited(ctx context.Context, e *Env, app *appliance.App, action, target, detail string, err error) error {
	entry := store.AuditEntry{At: e.Now(), Actor: cliActor(), Action: action, Target: target, Detail: detail, OK: err == nil}
	if err != nil {
		msg, _, _ := strings.Cut(err.Error(), "\n")
		if detail != "" {
			msg = detail + ": " + msg
		}
		entry.Detail = msg
	}
	if aerr := app.Store.AddAudit(context.WithoutCancel(ctx), entry); aerr != nil {
		fmt.Fprintf(e.Stderr, "usagemeter: writing the audit log: %v\n", aerr)
	}
	return err
}
