package pgtest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ServerCPU is the CPU time, in seconds, the PostgreSQL server of pool has
// used so far: its postmaster's children (backends, parallel workers),
// live or ended (Linux /proc). Benchmarks report it beside wall time, which
// on a shared machine is what the others leave.
func ServerCPU(t testing.TB, pool *pgxpool.Pool) float64 {
	t.Helper()
	pidFile := filepath.Join(filepath.Dir(pool.Config().ConnConfig.Host), "postmaster.pid")
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	postmaster, _, _ := strings.Cut(string(data), "\n")
	ticks := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		stat, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:])) // f[0] is field 3 (state)
		if len(f) < 15 {
			continue
		}
		pid := filepath.Base(filepath.Dir(p))
		switch {
		case pid == postmaster: // the children that ended
			ticks += atoi(f[13]) + atoi(f[14])
		case f[1] == postmaster:
			ticks += atoi(f[11]) + atoi(f[12])
		}
	}
	return float64(ticks) / 100 // USER_HZ
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// ProcessCPU is the CPU time this process has used, in seconds.
func ProcessCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
