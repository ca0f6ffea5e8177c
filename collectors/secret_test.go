package collectors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	const clear = "Sup3r-Secret"
	s := Secret(clear)
	tgt := Target{Kind: "vcenter", Endpoint: "https://vc.example", Username: "meter", Password: s}
	js, err := json.Marshal(tgt)
	if err != nil {
		t.Fatal(err)
	}
	y, err := s.MarshalYAML()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("login", "password", s, "target", tgt.Password)
	for _, out := range []string{
		fmt.Sprintf("%v %+v %#v %s %q", s, tgt, tgt, s, s),
		fmt.Errorf("login as %s with %v: %w", tgt.Username, s, fmt.Errorf("bad")).Error(),
		string(js), fmt.Sprint(y), logs.String(),
	} {
		if strings.Contains(out, clear) {
			t.Fatalf("the secret shows in %s", out)
		}
		if !strings.Contains(out, "<secret>") && !strings.Contains(out, `\u003csecret\u003e`) {
			t.Fatalf("no <secret> mark in %s", out)
		}
	}
	if s.Reveal() != clear || !s.IsSet() || Secret("").IsSet() || Secret("").String() != "" {
		t.Fatal("Reveal/IsSet")
	}
}
