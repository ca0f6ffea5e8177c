package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/web/auth"
)

func init() {
	register(&command{name: "admin set-password", summary: "set a web console admin's password, creating the account if missing (admin set-password USER)", run: runAdminSetPassword})
	register(&command{name: "admin list", summary: "list the web console admin accounts", run: runAdminList})
}

// openFn opens what an admin command works on: the appliance, or the
// receiver (whose database carries the same account tables), and how to
// close it.
type openFn func(ctx context.Context, e *Env, cfgPath string) (*appliance.App, func(), error)

func openAppliance(ctx context.Context, e *Env, cfgPath string) (*appliance.App, func(), error) {
	app, err := appliance.Open(ctx, cfgPath, e.Stderr)
	if err != nil {
		return nil, nil, err
	}
	return app, app.Close, nil
}

func runAdminSetPassword(ctx context.Context, e *Env, args []string) error {
	return adminSetPassword(ctx, e, args, "admin", openAppliance)
}

func runAdminList(ctx context.Context, e *Env, args []string) error {
	return adminList(ctx, e, args, "admin", openAppliance)
}

// adminSetPassword is `usagemeter <prefix> set-password USER`.
func adminSetPassword(ctx context.Context, e *Env, args []string, prefix string, open openFn) error {
	fs, cfgPath := newFlags(e, prefix+" set-password")
	file := fs.String("password-file", "", "file holding the new password (never pass it on the command line)")
	fromStdin := fs.Bool("password-stdin", false, "read the new password from standard input (asked without echo on a terminal)")
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return flagError(err)
	}
	if fs.NArg() != 1 {
		return usagef("usage: usagemeter %s set-password USER [--password-file FILE | --password-stdin]", prefix)
	}
	name := fs.Arg(0)
	pw, set, err := readPassword(stdin, e.Stderr, *file, *fromStdin, true, "New password for "+name+": ")
	if err != nil {
		return err
	}
	if !set {
		return usagef("give the password: --password-file FILE or --password-stdin (on a terminal you are asked for it)")
	}
	if err := auth.CheckPassword(pw.Reveal()); err != nil {
		return err
	}
	if *file == "" && isTerminal(stdin) {
		again, _, err := readPassword(stdin, e.Stderr, "", true, true, "Again: ")
		if err != nil {
			return err
		}
		if again != pw {
			return fmt.Errorf("the passwords differ: nothing changed")
		}
	}
	app, closeApp, err := open(ctx, e, *cfgPath)
	if err != nil {
		return err
	}
	defer closeApp()
	created, err := auth.SetPassword(ctx, app.Store, name, pw.Reveal(), e.Now())
	if err := audited(ctx, e, app, "admin.set_password", "user "+name, map[bool]string{true: "account created"}[created], err); err != nil {
		return err
	}
	if created {
		fmt.Fprintf(e.Stdout, "admin %s created\n", name)
	} else {
		fmt.Fprintf(e.Stdout, "admin %s: password changed; its sessions have ended and its lock-out is cleared\n", name)
	}
	return nil
}

// adminList is `usagemeter <prefix> list`.
func adminList(ctx context.Context, e *Env, args []string, prefix string, open openFn) error {
	fs, cfgPath := newFlags(e, prefix+" list")
	asJSON := fs.Bool("json", false, "print JSON (no password hashes)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	app, closeApp, err := open(ctx, e, *cfgPath)
	if err != nil {
		return err
	}
	defer closeApp()
	us, err := app.Store.AdminUsers(ctx)
	if err != nil {
		return err
	}
	now := e.Now()
	if *asJSON {
		type admin struct {
			Username          string     `json:"username"`
			CreatedAt         time.Time  `json:"created_at"`
			PasswordChangedAt time.Time  `json:"password_changed_at"`
			LastLoginAt       *time.Time `json:"last_login_at"`
			LockedUntil       *time.Time `json:"locked_until"`
		}
		out := []admin{}
		for _, u := range us {
			a := admin{Username: u.Username, CreatedAt: u.CreatedAt, PasswordChangedAt: u.PasswordChangedAt, LastLoginAt: u.LastLoginAt}
			if u.LockedUntil != nil && now.Before(*u.LockedUntil) {
				a.LockedUntil = u.LockedUntil
			}
			out = append(out, a)
		}
		return writeJSON(e, out)
	}
	if len(us) == 0 {
		fmt.Fprintf(e.Stdout, "no admin accounts: create one with `usagemeter %s set-password USER`\n", prefix)
		return nil
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tCREATED\tPASSWORD CHANGED\tLAST LOGIN\tSTATE")
	for _, u := range us {
		last, state := "never", "active"
		if u.LastLoginAt != nil {
			last = u.LastLoginAt.UTC().Format("2006-01-02 15:04Z")
		}
		if u.LockedUntil != nil && now.Before(*u.LockedUntil) {
			state = "locked until " + u.LockedUntil.UTC().Format("2006-01-02 15:04Z")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Username, u.CreatedAt.UTC().Format("2006-01-02"), u.PasswordChangedAt.UTC().Format("2006-01-02"), last, state)
	}
	return tw.Flush()
}
