package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// buildManager compiles managerPkg of the module in moduleDir for
// linux/arch into dir and returns the binary's path.
func buildManager(ctx context.Context, moduleDir, arch, dir string, stderr io.Writer) (string, error) {
	out := filepath.Join(dir, "manager")
	args := append(append([]string{"build"}, goBuildFlags...), "-o", out, managerPkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = moduleDir
	cmd.Env = append(append(os.Environ(), goBuildEnv...), "GOOS=linux", "GOARCH="+arch)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %v (GOOS=linux GOARCH=%s %v): %w", args, arch, goBuildEnv, err)
	}
	return out, nil
}
