package report

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

func TestZZScratchHold(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ZZ_HOLD"))
	if n == 0 {
		t.Skip()
	}
	f, spans := monthFixture(t, n)
	c := f.st.Pool().Config().ConnConfig
	fmt.Fprintf(os.Stderr, "HOLD host=%s port=%d db=%s user=%s spans=%d\n", c.Host, c.Port, c.Database, c.User, spans)
	time.Sleep(50 * time.Minute)
}
