package report_test

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/usagemeter/usagemeter/report"
)

// The appliance encrypts a bundle to the aggregator and signs it; the
// aggregator (here with the same package, in practice with gpg) decrypts it
// and checks who signed it.
func ExampleEncryptAndSign() {
	appliance, _ := report.GenerateKey("usagemeter appliance", "meter@example.com", time.Now().Add(-time.Minute))
	aggregator, _ := report.GenerateKey("Aggregator", "reports@example.com", time.Now().Add(-time.Minute))

	var msg bytes.Buffer
	err := report.EncryptAndSign(&msg, strings.NewReader("the bundle"), "usage-2026-10.tar.gz",
		openpgp.EntityList{aggregator}, appliance, true)
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.SplitN(msg.String(), "\n", 2)[0])

	plain, signer, err := report.DecryptAndVerify(&msg, openpgp.EntityList{aggregator}, openpgp.EntityList{appliance})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(plain), signer == fmt.Sprintf("%X", appliance.PrimaryKey.Fingerprint))
	// Output:
	// -----BEGIN PGP MESSAGE-----
	// the bundle true
}
