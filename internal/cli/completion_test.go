package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompletionAndManPages (issue 16: CLI conventions): the command line
// is cobra's: `completion bash` prints a script, the shell's completion
// requests complete command names and each command's flags, and `man`
// writes a page per command listing its flags.
func TestCompletionAndManPages(t *testing.T) {
	bin := binary(t)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("completion", "bash"); !strings.Contains(out, "__start_usagemeter") || !strings.Contains(out, "__complete") {
		t.Fatalf("completion bash:\n%.500s", out)
	}
	if out := run("__complete", "product", ""); !strings.Contains(out, "add\t") || !strings.Contains(out, "set\t") || !strings.Contains(out, "deactivate\t") {
		t.Fatalf("completion of product's commands:\n%s", out)
	}
	if out := run("__complete", "product", "add", "--pass"); !strings.Contains(out, "--password-file\t") || !strings.Contains(out, "--password-stdin\t") || strings.Contains(out, "--kind") {
		t.Fatalf("completion of product add's flags:\n%s", out)
	}
	dir := t.TempDir()
	run("man", "--dir", dir)
	page, err := os.ReadFile(filepath.Join(dir, "usagemeter-product-add.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"usagemeter-product-add - register a product to meter", `\fB--password-file\fP`, `\fB--accept-thumbprint\fP`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("man page of product add lacks %q:\n%s", want, page)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "usagemeter.1")); err != nil {
		t.Errorf("no man page for usagemeter itself: %v", err)
	}
}
