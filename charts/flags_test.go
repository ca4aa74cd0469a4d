package charts

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var helpFlag = regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)

// TestRenderedFlagsExist: every flag any scenario renders is one the
// manager defines, so a chart never starts a manager that exits on an
// unknown flag.
func TestRenderedFlagsExist(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "manager")
	build := exec.Command("go", "build", "-o", bin, "./cmd/manager")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/manager: %v\n%s", err, out)
	}
	help, _ := exec.Command(bin, "--help").CombinedOutput() // exits 2 after printing the usage
	var defined []string
	for _, m := range helpFlag.FindAllStringSubmatch(string(help), -1) {
		defined = append(defined, m[1])
	}
	if !slices.Contains(defined, "jwks-bind-address") {
		t.Fatalf("no flags in manager --help:\n%s", help)
	}
	for _, s := range scenarios {
		for _, arg := range managerArgs(t, render(t, s), fullname(s)) {
			name, _, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
			if !slices.Contains(defined, name) {
				t.Errorf("%s: the chart renders %s, which the manager does not define", s.name, arg)
			}
		}
	}
}

// fullname is the chart's fullname helper for a release without overrides.
func fullname(s scenario) string {
	if strings.Contains(s.release, "signet") {
		return s.release
	}
	return s.release + "-signet"
}
