package appliance

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/usagemeter/usagemeter/internal/alert"
	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
	"github.com/usagemeter/usagemeter/report"
)

// Check levels.
const (
	Ready   = "ok"
	Warning = "warning" // the month can be reported, but not for long
	Failing = "failing" // the month's report would fail as things stand
)

// Check is one condition the monthly report needs, as `usagemeter status`
// prints it: what was found and, when it is not met, what to do.
type Check struct {
	Name   string `json:"name"`
	Level  string `json:"level"` // Ready, Warning or Failing
	Detail string `json:"detail"`
	Action string `json:"action,omitempty"`
}

// KeyWarning is how long before a recipient key expires the readiness
// check warns.
const KeyWarning = 30 * 24 * time.Hour

// Readiness checks, now, what the month's report needs: the appliance is
// registered, the recipient keys are readable and valid (and not about to
// expire), the report has a channel, the SMTP server answers, at least
// one product is active, and the system clock is synchronised. Weeks
// before the 1st, so nothing waits for the report to fail.
func Readiness(ctx context.Context, app *App, now time.Time) []Check {
	cfg := app.Config
	var out []Check
	add := func(name, level, detail, action string) {
		out = append(out, Check{Name: name, Level: level, Detail: detail, Action: action})
	}

	a, err := app.Store.ReadAppliance(ctx)
	switch {
	case err != nil:
		add("registration", Failing, err.Error(), "run `usagemeter migrate`, then `usagemeter register`")
	case a.ContractID == "":
		add("registration", Failing, "the appliance is not registered (no contract)", "run `usagemeter register --contract ID --program rental|sovereign-cloud`")
	default:
		add("registration", Ready, fmt.Sprintf("contract %s, programme %s", a.ContractID, a.Program), "")
	}

	switch keys := cfg.Report.RecipientKeys; {
	case len(keys) == 0:
		add("recipient keys", Failing, "report.recipient_keys is empty: reports are only sent encrypted", "put the aggregator's public key file in report.recipient_keys")
	default:
		el, err := report.ReadConfiguredRecipients(keys)
		if err != nil {
			add("recipient keys", Failing, err.Error(), "replace the key file with the aggregator's current public key")
			break
		}
		level, detail, action := Ready, fmt.Sprintf("%d key(s) valid", len(el)), ""
		for _, e := range el {
			if _, ok := e.EncryptionKey(now.Add(KeyWarning)); !ok {
				level = Warning
				detail = fmt.Sprintf("key %s can no longer be encrypted to within %d days", e.PrimaryKey.KeyIdString(), int(KeyWarning.Hours()/24))
				action = "ask the aggregator for its renewed public key and replace the file"
			}
		}
		add("recipient keys", level, detail, action)
	}

	enr, enrErr := protocol.Load(cfg.DataDir)
	switch {
	case enrErr != nil:
		add("delivery", Failing, enrErr.Error(), "enrol again with a new token (usagemeter enrol)")
	case len(cfg.Report.To) == 0 && cfg.Report.UploadURL == "" && enr == nil:
		add("delivery", Failing, "neither report.to nor report.upload_url is set, nor a receiver enrolled: the report would go nowhere",
			"set report.to (the aggregator's address) or report.upload_url, or enrol with a receiver (usagemeter enrol)")
	default:
		detail := deliveryDetail(cfg.Report.To, cfg.Report.UploadURL)
		if enr != nil {
			if detail != "" {
				detail += ", "
			}
			detail += "signed upload to the receiver " + enr.URL
		}
		add("delivery", Ready, detail, "")
	}

	if cfg.SMTP.Host != "" {
		addr := net.JoinHostPort(cfg.SMTP.Host, strconv.Itoa(cfg.SMTP.Port))
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			add("smtp", Failing, fmt.Sprintf("%s does not answer: %v", addr, err), "check smtp.host and smtp.port, the firewall and the mail relay")
		} else {
			c.Close()
			add("smtp", Ready, addr+" answers", "")
		}
	} else if len(cfg.Report.To) > 0 || len(cfg.Alerts.To) > 0 {
		add("smtp", Failing, "smtp.host is not set, so no mail can be sent", "set smtp.host")
	}

	ps, err := app.Store.Products(ctx, true)
	switch {
	case err != nil:
		add("products", Failing, err.Error(), "")
	case len(ps) == 0:
		add("products", Failing, "no active product: the report would be empty", "add a product with `usagemeter product add`, or reactivate one")
	default:
		add("products", Ready, fmt.Sprintf("%d active", len(ps)), "")
	}

	switch synced, err := clockSynced(); {
	case err != nil:
		add("clock", Warning, "cannot tell whether the clock is synchronised: "+err.Error(), "check `timedatectl`")
	case !synced:
		add("clock", Failing, "the system clock is not synchronised (NTP): hours and reports depend on it", "configure NTP servers and check `timedatectl`")
	default:
		add("clock", Ready, "synchronised", "")
	}
	return out
}

func deliveryDetail(to []string, upload string) string {
	s := ""
	if len(to) > 0 {
		s = fmt.Sprintf("mail to %d address(es)", len(to))
	}
	if upload != "" {
		if s != "" {
			s += ", "
		}
		s += "upload to " + upload
	}
	return s
}

// clockSynced asks the kernel whether the clock is synchronised: adjtimex
// answers TIME_ERROR (5) while no NTP daemon disciplines it.
var clockSynced = func() (bool, error) {
	var tx syscall.Timex
	state, err := syscall.Adjtimex(&tx)
	if err != nil {
		return false, err
	}
	return state != 5, nil
}

// readinessJob raises (or resolves) the readiness alert from Readiness: the
// failing checks, and the warnings (a key about to expire). A check that
// cannot tell (the clock, where the kernel does not say) raises nothing.
func (d *Daemon) readinessJob(ctx context.Context) {
	var problems []alert.Problem
	for _, c := range Readiness(ctx, d.app, d.now()) {
		if c.Level == Failing || (c.Level == Warning && c.Name != "clock") {
			problems = append(problems, alert.Problem{Name: c.Name, Detail: c.Detail, Action: c.Action})
		}
	}
	d.reportReady.Set(map[bool]float64{true: 1, false: 0}[len(problems) == 0])
	if len(problems) > 0 {
		d.app.Log.Warn("the monthly report is not ready", "problems", len(problems), "first", problems[0].Name+": "+problems[0].Detail)
	}
	if err := d.engine.NotReady(ctx, problems); err != nil {
		d.app.Log.Error("readiness alert", "err", err)
	}
}
