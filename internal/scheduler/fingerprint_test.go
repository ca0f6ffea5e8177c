package scheduler

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/internal/store"
)

// TestFingerprintKeepsNoSecret: the fingerprint of a product and its paired
// vCenter holds neither password, in clear or hex, and tells apart two
// passwords of the paired product.
func TestFingerprintKeepsNoSecret(t *testing.T) {
	p := store.Product{ID: 2, Kind: "srm", Endpoint: "https://srm01", Password: "SrmPassw0rd", PairedID: 1}
	vc := store.Product{ID: 1, Kind: "vcenter", Endpoint: "https://vc01", Password: "VcPassw0rd"}
	fp := fingerprint(p, &vc)
	for _, pw := range []string{"SrmPassw0rd", "VcPassw0rd"} {
		if strings.Contains(fp, pw) || strings.Contains(fp, hex.EncodeToString([]byte(pw))) {
			t.Fatalf("the fingerprint %s holds the password %s", fp, pw)
		}
	}
	vc.Password = "VcPassw0rd-2"
	if fingerprint(p, &vc) == fp || fingerprint(p, nil) == fp {
		t.Fatal("the fingerprint does not change with the paired product")
	}
}
