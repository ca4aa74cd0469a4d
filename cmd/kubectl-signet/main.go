// Command kubectl-signet is the kubectl plugin of signet: `kubectl signet
// status|rotate|revoke|suspend|resume|jwks|token`. It reads the kubeconfig
// as kubectl does (--kubeconfig, $KUBECONFIG, --context, -n).
//
//	go install github.com/signet-dev/signet/cmd/kubectl-signet@latest
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/spf13/pflag"
)

// Exit statuses: jwks tells a difference (1) from a failure (2), as diff
// and kubectl diff do; the other commands fail with 1.
const (
	exitOK      = 0
	exitFailed  = 1
	exitDiffers = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the plugin: it parses args, runs the command and returns the
// exit status. Tests call it as kubectl would run the binary.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		fmt.Fprint(stdout, usage(o.flags))
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "error: %v\nSee 'kubectl signet --help'.\n", err)
		return exitUsage
	}
	cmd := commands[o.command]
	if err := cmd.run(ctx, o, stdout, stderr); err != nil {
		var d *differs
		if errors.As(err, &d) {
			fmt.Fprintln(stderr, d.Error())
			return exitDiffers
		}
		fmt.Fprintln(stderr, "error:", err)
		if o.command == "jwks" {
			return exitUsage
		}
		return exitFailed
	}
	return exitOK
}

// differs is jwks' verdict when the served keys are not the ConfigMap's.
type differs struct{ summary string }

func (d *differs) Error() string { return d.summary }
