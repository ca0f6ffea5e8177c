package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/report"
)

func init() {
	register(&command{name: "anonymize reverse", summary: "print the clear-text view of a report bundle (anonymize reverse BUNDLE)", run: runAnonymizeReverse})
}

// runAnonymizeReverse replaces the hashes in a report by the names they
// stand for, from the reverse map kept in the database (anon_map). It reads
// the plain bundle the appliance keeps next to the encrypted one (the
// encrypted one is for the aggregator's keys: the appliance cannot open it),
// or a single file taken out of a bundle (a .tsv or manifest.json).
func runAnonymizeReverse(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "anonymize reverse")
	pos, err := splitArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: usagemeter anonymize reverse BUNDLE (a .tar.gz from data_dir/reports, or one of its files)")
	}
	path := pos[0]
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !report.IsPlainBundle(data) && strings.HasSuffix(path, ".gpg") {
		plain := strings.TrimSuffix(path, ".gpg")
		if data, err = os.ReadFile(plain); err != nil {
			return fmt.Errorf("%s is encrypted to the aggregator's keys, and the plain bundle %s kept next to it cannot be read: %w", path, plain, err)
		}
		path = plain
	}
	app, err := appliance.Open(ctx, *cfgPath, e.Stderr)
	if err != nil {
		return err
	}
	defer app.Close()
	stored, err := app.Store.AnonMap(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]anonymize.Entry, len(stored))
	for h, en := range stored {
		m[h] = anonymize.Entry{Kind: en.Kind, Value: en.Value}
	}
	if report.IsPlainBundle(data) {
		return report.ReverseBundle(data, m, e.Stdout)
	}
	if strings.HasPrefix(strings.TrimSpace(string(data[:min(len(data), 64)])), "-----BEGIN PGP") {
		return fmt.Errorf("%s is encrypted: give the plain bundle kept next to it in data_dir/reports", path)
	}
	_, err = io.WriteString(e.Stdout, anonymize.Reverse(string(data), m))
	return err
}
