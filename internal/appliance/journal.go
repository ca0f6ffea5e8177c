package appliance

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"syscall"
)

// Log lines and journald. Under systemd, stderr is a stream to the journal
// (JOURNAL_STREAM names it); a line that starts with "<N>" gets priority N
// (sd-daemon(3), SyslogLevelPrefix=yes), so `journalctl -p warning`
// finds the warnings and errors. Everywhere else lines are written as they
// are.

// journalStream reports whether f is the stream systemd connected to the
// journal: JOURNAL_STREAM holds its device and inode.
func journalStream(f *os.File) bool {
	env := os.Getenv("JOURNAL_STREAM")
	if env == "" {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return env == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// levelRE finds the level of a slog line, text or JSON.
var levelRE = regexp.MustCompile(`(?:^|\s)level=([A-Z]+)|"level":"([A-Z]+)`)

// journalWriter prefixes each log line (slog writes one per Write) with
// its syslog priority.
type journalWriter struct{ w io.Writer }

func (j journalWriter) Write(p []byte) (int, error) {
	prio := 6 // info
	if m := levelRE.FindSubmatch(p); m != nil {
		lvl := string(m[1]) + string(m[2])
		switch lvl {
		case "ERROR":
			prio = 3
		case "WARN":
			prio = 4
		case "DEBUG":
			prio = 7
		}
	}
	if _, err := fmt.Fprintf(j.w, "<%d>%s", prio, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
