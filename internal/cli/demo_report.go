//go:build demo

package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	netmail "net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/usagemeter/usagemeter/collectors"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/smtptest"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/report"
)

// demoReport generates and sends month as the monthly job does, lets the
// outbox deliver it to the SMTP capture, saves every captured mail, and
// decrypts the report attachment with the aggregator's key.
func demoReport(ctx context.Context, app *appliance.App, d *appliance.Daemon, m store.Month, smtp *smtptest.Server, aggKey *openpgp.Entity, run *demoRun) error {
	g, err := report.NewFromConfig(ctx, app.Config, app.Store, app.Log)
	if err != nil {
		return err
	}
	g.SetNow(d.Now)
	res, err := g.Send(ctx, m)
	if err != nil {
		return fmt.Errorf("monthly report: %w", err)
	}
	run.Bundle = res.Path
	d.RunOutbox(ctx)

	msgs := smtp.Messages()
	if err := os.MkdirAll(run.MailDir, 0o700); err != nil {
		return err
	}
	var attachment []byte
	var attName string
	for i, msg := range msgs {
		subject := demoSubject(msg.Data)
		run.Subjects = append(run.Subjects, subject)
		run.MailDates = append(run.MailDates, demoDate(msg.Data))
		name := fmt.Sprintf("%02d-%s.eml", i+1, demoSlug(subject))
		if err := os.WriteFile(filepath.Join(run.MailDir, name), msg.Data, 0o600); err != nil {
			return err
		}
		if strings.HasPrefix(subject, "Usage report ") {
			attName, attachment, err = demoAttachment(msg.Data)
			if err != nil {
				return fmt.Errorf("report mail %s: %w", name, err)
			}
		}
	}
	if attachment == nil {
		return errors.New("the report mail did not reach the SMTP capture (see demo.log)")
	}

	signer, err := report.LoadSigningKey(ctx, app.Config, app.Store)
	if err != nil {
		return err
	}
	tgz, _, err := report.DecryptAndVerify(bytes.NewReader(attachment), openpgp.EntityList{aggKey}, openpgp.EntityList{signer})
	if err != nil {
		return fmt.Errorf("decrypting the mailed report %s: %w", attName, err)
	}
	man, err := report.VerifyBundle(tgz)
	if err != nil {
		return fmt.Errorf("the decrypted report: %w", err)
	}
	run.Manifest = *man
	dec := filepath.Join(run.DataDir, "decrypted")
	base := strings.TrimSuffix(attName, ".gpg")
	run.Decrypted = filepath.Join(dec, base)
	if err := os.MkdirAll(dec, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(run.Decrypted, tgz, 0o600); err != nil {
		return err
	}
	files, err := report.ReadTarGz(bytes.NewReader(tgz))
	if err != nil {
		return err
	}
	for _, f := range files {
		p := filepath.Join(dec, strings.TrimSuffix(base, ".tar.gz"), filepath.FromSlash(f.Name))
		if !strings.HasPrefix(p, dec+string(filepath.Separator)) {
			return fmt.Errorf("the report holds a file outside its directory: %q", f.Name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, 0o600); err != nil {
			return err
		}
		if f.Name == report.FileMonthly {
			run.Rows = demoTSV(f.Data)
		}
	}
	if run.Rows == nil {
		return fmt.Errorf("the decrypted report has no %s", report.FileMonthly)
	}
	return nil
}

// demoTSV parses a TSV file, without its header line.
func demoTSV(b []byte) [][]string {
	rows := [][]string{}
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if i == 0 || line == "" {
			continue
		}
		rows = append(rows, strings.Split(line, "\t"))
	}
	return rows
}

// demoSubject is the decoded Subject of a raw mail.
func demoSubject(raw []byte) string {
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return "(unparsable mail)"
	}
	s, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return msg.Header.Get("Subject")
	}
	return s
}

// demoDate is the Date of a raw mail (the demo clock's time for alerts).
func demoDate(raw []byte) time.Time {
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return time.Time{}
	}
	t, _ := msg.Header.Date()
	return t.UTC()
}

var slugRE = regexp.MustCompile(`[^a-z0-9]+`)

func demoSlug(s string) string {
	s = strings.Trim(slugRE.ReplaceAllString(strings.ToLower(strings.TrimPrefix(s, "[usagemeter] ")), "-"), "-")
	if len(s) > 60 {
		s = strings.TrimRight(s[:60], "-")
	}
	return s
}

// demoAttachment returns the first attachment of a raw mail, decoded.
func demoAttachment(raw []byte) (string, []byte, error) {
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return "", nil, err
	}
	name, data, err := findAttachment(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Header.Get("Content-Disposition"), msg.Body)
	if err == nil && data == nil {
		err = errors.New("no attachment")
	}
	return name, data, err
}

func findAttachment(ctype, cte, disp string, body io.Reader) (string, []byte, error) {
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		return "", nil, nil
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return "", nil, nil
			}
			if err != nil {
				return "", nil, err
			}
			name, data, err := findAttachment(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p.Header.Get("Content-Disposition"), p)
			if err != nil || data != nil {
				return name, data, err
			}
		}
	}
	_, dparams, _ := mime.ParseMediaType(disp)
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	if name == "" {
		return "", nil, nil
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return "", nil, err
	}
	if strings.EqualFold(cte, "base64") {
		b, err = base64.StdEncoding.DecodeString(strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' {
				return -1
			}
			return r
		}, string(b)))
	}
	return name, b, err
}

// demoNames resolves hashed names of the report through the appliance's
// local reverse map (what `usagemeter anonymize reverse` uses), and product
// hosts to the demo's product names.
type demoNames struct {
	anon  map[string]store.AnonEntry
	hosts map[string]string // kind + "|" + product host -> "vc01"
}

func (n demoNames) name(h string) string {
	if e, ok := n.anon[h]; ok {
		return e.Value
	}
	return h
}

// demoKindOf is the product kind behind a report's product column: the kind
// of that display name, else vcenter (vCenter Server, VMware Cloud
// Foundation, vSAN and Tanzu are all read from the vCenter).
func demoKindOf(product string) string {
	for _, k := range collectors.Kinds() {
		if collectors.DisplayName(k) == product {
			return k
		}
	}
	return "vcenter"
}

func (n demoNames) host(product, h string) string {
	v := n.name(h)
	if name, ok := n.hosts[demoKindOf(product)+"|"+v]; ok {
		return name
	}
	return v
}

// printDemoSummary prints what the demo did, every figure taken from the
// decrypted report.
func printDemoSummary(w io.Writer, run *demoRun, vcs []*demoVCenter, vcd *demoVCD, nsx *demoNSXT, nsxv *demoNSXVManager, more []*demoProduct, anon map[string]store.AnonEntry, began time.Time) {
	names := demoNames{anon: anon, hosts: map[string]string{}}
	type named struct{ kind, name, url string }
	var products []named
	for _, v := range vcs {
		products = append(products, named{"vcenter", v.name, v.sim.URL()})
	}
	if vcd != nil {
		products = append(products, named{"vcd", "vcd01", vcd.url})
	}
	if nsx != nil {
		products = append(products, named{"nsxt", "nsx01", nsx.url})
	}
	if nsxv != nil {
		products = append(products, named{"nsxv", "nsxv01", nsxv.url})
	}
	for _, p := range more {
		products = append(products, named{p.p.Kind, p.short, p.srv.url})
	}
	for _, p := range products {
		if u, err := url.Parse(p.url); err == nil {
			names.hosts[p.kind+"|"+u.Hostname()] = p.name
		}
	}
	man := run.Manifest
	fmt.Fprintf(w, "\n== Report %s version %d: decrypted with the aggregator's key, signature and checksums verified ==\n", man.Month, man.Version)
	fmt.Fprintf(w, "%d hours in the month, anonymisation %s, rules %s; customers and hosts below are the report's hashes\nresolved through the appliance's local reverse map (`usagemeter anonymize reverse`).\n\n",
		man.HoursInMonth, man.Anonymization, man.RulesVersion)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PRODUCT\tHOST\tEDITION\tMETRIC\tCUSTOMER\tQUANTITY\tUNIT")
	type key struct{ product, host, edition, metric, unit string }
	totals := map[key]float64{}
	var order []key
	rows := make([][]string, 0, len(run.Rows))
	for _, r := range run.Rows {
		if len(r) >= 8 {
			rows = append(rows, r)
		}
	}
	// In clear names' order (the report's is the hashes').
	sortKey := func(r []string) string {
		return strings.Join([]string{r[0], names.host(r[0], r[5]), r[1], r[2], names.name(r[7])}, "\x00")
	}
	slices.SortStableFunc(rows, func(a, b []string) int { return strings.Compare(sortKey(a), sortKey(b)) })
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r[0], names.host(r[0], r[5]), r[1], r[2], names.name(r[7]), r[4], r[3])
		k := key{r[0], names.host(r[0], r[5]), r[1], r[2], r[3]}
		if _, ok := totals[k]; !ok {
			order = append(order, k)
		}
		q, _ := strconv.ParseFloat(r[4], 64)
		totals[k] += q
	}
	_ = tw.Flush()

	fmt.Fprintf(w, "\nPer product and edition (the rows above summed over customers):\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PRODUCT\tHOST\tEDITION\tMETRIC\tMONTHLY FIGURE\tUNIT")
	for _, k := range order {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.3f\t%s\n", k.product, k.host, k.edition, k.metric, totals[k], k.unit)
	}
	_ = tw.Flush()

	if len(man.Included) > 0 {
		fmt.Fprintf(w, "\nMetered, included in another product rather than reported (VCF replaces vSphere billing; manifest.json \"included\"):\n")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, x := range man.Included {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%.3f %s\t%d objects\tin %s\n", x.Product, names.host(x.Product, x.Host), x.Edition, x.Metric, x.Quantity, x.Unit, x.Objects, x.IncludedIn)
		}
		_ = tw.Flush()
	}
	if len(man.Excluded) > 0 {
		fmt.Fprintf(w, "\nMetered but not reported (perpetual, demo or evaluation licences; manifest.json \"excluded\"):\n")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, x := range man.Excluded {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%.3f %s\t%d objects\n", x.Product, names.host(x.Product, x.Host), x.Edition, x.Metric, x.Quantity, x.Unit, x.Objects)
		}
		_ = tw.Flush()
	}

	fmt.Fprintf(w, "\nGaps (manifest.json \"products\"):\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, p := range man.Products {
		fmt.Fprintf(tw, "  %s\t%s\t%d of %d hours collected\t%d missing\n", p.Product, names.host(p.Product, p.Host), p.CollectedHours, p.ExpectedHours, p.MissingHours)
	}
	_ = tw.Flush()
	if run.HoursRun < man.HoursInMonth {
		fmt.Fprintf(w, "  (a short run: only the first %d hours were collected, the rest of the month counts as missing)\n", run.HoursRun)
	}

	fmt.Fprintf(w, "\nMails captured by the local SMTP server (through the outbox):\n")
	for i, s := range run.Subjects {
		fmt.Fprintf(w, "  %2d. %s  %s\n", i+1, run.MailDates[i].Format("2006-01-02 15:04Z"), s)
	}

	base := strings.TrimSuffix(filepath.Base(run.Decrypted), ".tar.gz")
	fmt.Fprintf(w, "\nFiles:\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range [][2]string{
		{"data dir", run.DataDir},
		{"configuration", run.Config},
		{"database (managed PostgreSQL)", filepath.Join(run.DataDir, "postgres")},
		{"log", filepath.Join(run.DataDir, "demo.log")},
		{"report bundle (encrypted, as mailed)", run.Bundle},
		{"report bundle (plain, kept on the appliance)", strings.TrimSuffix(run.Bundle, ".gpg")},
		{"decrypted copy of the mailed attachment", run.Decrypted},
		{"its files", filepath.Join(filepath.Dir(run.Decrypted), base) + string(filepath.Separator)},
		{"mails (.eml)", run.MailDir + string(filepath.Separator)},
		{"aggregator key pair (demo)", filepath.Dir(run.PrivateKey) + string(filepath.Separator)},
	} {
		fmt.Fprintf(tw, "  %s\t%s\n", f[0], f[1])
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nDecrypt it with stock gpg:\n  export GNUPGHOME=$(mktemp -d); gpg --batch --import %s\n  gpg --decrypt %s | tar tzv\n", run.PrivateKey, run.Bundle)
	fmt.Fprintf(w, "Look at the data (the database stays in the data dir):\n  usagemeter report list --config %s\n", run.Config)
	fmt.Fprintf(w, "\nDemo done in %s (collection %s).\n", time.Since(began).Round(100*time.Millisecond), run.CollectTook.Round(100*time.Millisecond))
}
