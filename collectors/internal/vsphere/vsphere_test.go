package vsphere

import "testing"

func TestSDKURL(t *testing.T) {
	for in, want := range map[string]string{
		"vc01.example":                    "https://vc01.example/sdk",
		" vc01.example:8443 ":             "https://vc01.example:8443/sdk",
		"https://meter:pw@vc01.example/":  "https://vc01.example/sdk",
		"https://vc01.example/custom/sdk": "https://vc01.example/custom/sdk",
		"https://[2001:db8::5]:443":       "https://[2001:db8::5]:443/sdk",
	} {
		u, err := SDKURL(in)
		if err != nil || u.String() != want {
			t.Errorf("SDKURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for in, want := range map[string]string{
		"":                    `endpoint "": not a URL or host name`,
		"http://vc01.example": `endpoint "http://vc01.example": scheme must be https`,
		"https://:443":        `endpoint "https://:443": not a URL or host name`,
	} {
		if _, err := SDKURL(in); err == nil || err.Error() != want {
			t.Errorf("SDKURL(%q): %v, want %s", in, err, want)
		}
	}
}
