package appliance

import (
	"fmt"
	"os"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/report"
)

// LoadConfig loads the file and the checks that need other packages
// (recipient keys are parsed by the report package).
func LoadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	for _, check := range configChecks {
		if err := check(cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return cfg, nil
}

// configChecks are validations beyond the config package.
var configChecks = []func(*config.Config) error{checkRecipientKeys, checkBackup}

// checkRecipientKeys refuses, at config load, recipient keys that are not
// usable now (malformed, private, expired, revoked, no encryption subkey),
// and a configured signing key or anonymisation secret that exists but
// cannot be used (files that do not exist yet are created at first use).
func checkRecipientKeys(c *config.Config) error {
	if len(c.Report.RecipientKeys) > 0 {
		if _, err := report.ReadConfiguredRecipients(c.Report.RecipientKeys); err != nil {
			return err
		}
	}
	if p := c.Report.SigningKeyFile; p != "" {
		if _, err := os.Stat(p); err == nil {
			if _, err := report.LoadOrCreateKey(p, "", ""); err != nil {
				return fmt.Errorf("report.signing_key_file: %w", err)
			}
		}
	}
	if p := c.Report.SecretFile; p != "" && c.Report.Anonymization == string(anonymize.ModeHashed) {
		if _, err := os.Stat(p); err == nil {
			if _, err := anonymize.LoadOrCreateSecret(p); err != nil {
				return fmt.Errorf("report.secret_file: %w", err)
			}
		}
	}
	return nil
}
