package appliance

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/usagemeter/usagemeter/internal/config"
)

// TestJournalPriorities (issue 16): under systemd (stderr is the stream
// JOURNAL_STREAM names) every log line carries its level as a syslog
// priority prefix, so `journalctl -p warning` finds warnings and errors;
// elsewhere lines are unchanged.
func TestJournalPriorities(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "journal")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"text", "json"} {
		t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
		if err := f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(0, 0); err != nil {
			t.Fatal(err)
		}
		log := NewLogger(config.Log{Level: "debug", Format: format}, f)
		log.Debug("d")
		log.Info("i", "level_note", "level=ERROR in a value")
		log.Warn("w")
		log.Error("e")
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		want := []string{"<7>", "<6>", "<4>", "<3>"}
		if len(lines) != len(want) {
			t.Fatalf("%s: %q", format, lines)
		}
		for i, l := range lines {
			if !strings.HasPrefix(l, want[i]) {
				t.Errorf("%s line %d: %q, want prefix %s", format, i, l, want[i])
			}
		}
	}
	t.Setenv("JOURNAL_STREAM", "1:2")
	var buf bytes.Buffer
	NewLogger(config.Log{Level: "info"}, &buf).Warn("plain")
	if strings.HasPrefix(buf.String(), "<") {
		t.Errorf("not the journal, yet prefixed: %q", buf.String())
	}
}
